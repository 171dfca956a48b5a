"""The model families of the README table through hessian, landscape, lmc and esd, each cell
against an independent reference that shares no code with the kit:

* hessian: the top-|lambda| eigenvalue equals a power iteration on ``torch.autograd.functional
  .hvp`` of a loss written here (``functional_call`` + cross-entropy / MSE);
* landscape: the centre of the grid equals the model's own loss (its forward, by hand);
* lmc: the path starts at model A's and ends at model B's own loss (follow policy);
* esd: alpha equals WeightWatcher's in compat mode on every matrix both analyse.

Families: timm-structured ViT blocks (fused and unfused attention paths), Swin-style windowed
attention, a torchvision-structured ResNet-18 (BatchNorm), a Conv+BN+MaxPool net, and the KAN
families (zoo, efficient-kan, FastKAN; pykan in tests/test_kan_adapters.py). HuggingFace BERT,
GPT-2 and ViT are in tests/test_real_models_hf.py; attention and symbolic cells in their own
test files (see the README table).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from inspect_kit import zoo
from inspect_kit.testing import assert_untouched

from .resnet_fixture import ConvBNPool, randomize_batchnorm, resnet18
from .test_attention_timm import TimmViTBlocks, TinySwin
from .test_kan_adapters import RefEfficientKAN, RefFastKAN


class Pooled(nn.Module):
    """A token model with a classification head: mean over tokens of a feature body."""

    def __init__(self, body: nn.Module, dim: int, classes: int = 3) -> None:
        super().__init__()
        self.body, self.head = body, nn.Linear(dim, classes)

    def forward(self, x):
        h = self.body(x)
        return self.head(h.reshape(h.shape[0], -1, h.shape[-1]).mean(1))


def _timm(fused: bool, seed: int):
    torch.manual_seed(seed)
    m = Pooled(TimmViTBlocks(depth=2, dim=16, num_heads=2), 16)
    m.body.set_fused(fused)
    g = torch.Generator().manual_seed(9)
    return m.eval(), (torch.randn(6, 5, 16, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]))


def _swin(fused: bool, seed: int):
    torch.manual_seed(seed)
    m = Pooled(TinySwin(fused=fused, dim=16, heads=2), 16)
    g = torch.Generator().manual_seed(9)
    return m.eval(), (torch.randn(4, 8, 8, 16, generator=g), torch.tensor([0, 1, 2, 0]))


def _resnet(seed: int):
    m = randomize_batchnorm(resnet18(num_classes=3, width=4, in_channels=1, seed=seed), seed)
    g = torch.Generator().manual_seed(9)
    return m.eval(), (torch.randn(6, 1, 16, 16, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]))


def _convbn(seed: int):
    torch.manual_seed(seed)
    m = randomize_batchnorm(ConvBNPool(num_classes=3), seed)
    g = torch.Generator().manual_seed(9)
    return m.eval(), (torch.randn(6, 1, 16, 16, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]))


def _kan(kind: str, seed: int):
    g = torch.Generator().manual_seed(9)
    x = torch.rand(40, 3, generator=g) * 2 - 1
    y = torch.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:]
    if kind == "zoo":
        m = zoo.build("kan", width=[3, 4, 1], seed=seed)
    elif kind == "efficient":
        torch.manual_seed(seed)
        m = RefEfficientKAN([3, 4, 1])
    else:
        torch.manual_seed(seed)
        m = RefFastKAN([3, 4, 1])
    return m.eval(), (x, y)


FAMILIES = {
    "timm ViT (fused)": lambda s: _timm(True, s),
    "timm ViT (unfused)": lambda s: _timm(False, s),
    "Swin windows": lambda s: _swin(True, s),
    "ResNet-18 (BatchNorm)": _resnet,
    "Conv+BN+MaxPool": _convbn,
    "KAN (zoo)": lambda s: _kan("zoo", s),
    "KAN (efficient-kan)": lambda s: _kan("efficient", s),
    "KAN (FastKAN)": lambda s: _kan("fast", s),
}


def _loss(model, x, y, params=None):
    out = model(x) if params is None else functional_call(model, params, (x,))
    return F.mse_loss(out, y) if y.is_floating_point() else F.cross_entropy(out, y)


def _own_loss(model, data) -> float:
    with torch.no_grad():
        return float(_loss(model, *data))


def _power_iteration(model, data, iters: int = 200) -> float:
    """Top-|lambda| of the loss Hessian by power iteration on autograd.functional.hvp (float64)."""
    import copy

    from torch.nn.attention import SDPBackend, sdpa_kernel

    twin = copy.deepcopy(model).double()
    names = [n for n, p in twin.named_parameters() if p.requires_grad]
    params = tuple(p.detach() for n, p in twin.named_parameters() if p.requires_grad)
    x, y = data
    x = x.double()
    y = y.double() if y.is_floating_point() else y

    def f(*ps):
        return _loss(twin, x, y, dict(zip(names, ps)))

    g = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    lam = 0.0
    with sdpa_kernel([SDPBackend.MATH]):
        for _ in range(iters):
            norm = torch.sqrt(sum((t * t).sum() for t in v))
            v = [t / norm for t in v]
            _, hv = torch.autograd.functional.hvp(f, params, tuple(v))
            new = float(sum((a * b).sum() for a, b in zip(v, hv)))
            if abs(new - lam) <= 1e-9 * abs(new):
                break
            lam, v = new, list(hv)
    return new


@pytest.mark.parametrize("family", list(FAMILIES))
def test_hessian_top_eigenvalue(family):
    from analyses.hessian.api import hessian

    model, data = FAMILIES[family](0)
    with assert_untouched(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = hessian(model, data, top_k=1, which="magnitude", trace=False, dtype="float64",
                      tol=1e-10, progress=False)
    truth = _power_iteration(model, data)
    assert abs(res.eigenvalues[0]) == pytest.approx(abs(truth), rel=1e-3)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_landscape_centre_and_lmc_ends(family):
    from analyses.landscape.api import landscape
    from analyses.lmc.api import lmc

    a, data = FAMILIES[family](0)
    b, _ = FAMILIES[family](1)
    with assert_untouched(a), assert_untouched(b), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        land = landscape(a, data, dims=1, steps=3, progress=False)
        path = lmc(a, b, data, steps=3, refine=False, progress=False)
    assert land.center_loss == pytest.approx(_own_loss(a, data), rel=1e-5, abs=1e-7)
    assert path.loss["data"][0] == pytest.approx(_own_loss(a, data), rel=1e-5, abs=1e-7)
    assert path.loss["data"][-1] == pytest.approx(_own_loss(b, data), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("family", [f for f in FAMILIES if not f.startswith("KAN")])
def test_esd_equals_weightwatcher(family):
    from analyses.esd.api import esd

    model, _ = FAMILIES[family](0)
    with assert_untouched(model):
        res = esd(model, method="compat", backend="weightwatcher", mp_fit=False, detx=False,
                  min_evals=4, progress=False)
    cmp = [c for c in res.comparison if c["delta_alpha"] == c["delta_alpha"]]  # both fitted
    assert cmp, "no matrix analysed by both"
    assert max(c["delta_alpha"] for c in cmp) <= 1e-8
