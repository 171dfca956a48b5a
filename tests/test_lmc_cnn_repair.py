"""REPAIR and RESET on BatchNorm networks, checked against the networks' own forward passes:
RESET statistics equal each BatchNorm input's data statistics, REPAIRed channels have the
interpolated endpoint statistics, the endpoints are reproduced exactly, and one batch and many
batches give the same state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from analyses.lmc.api import lmc
from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec
from analyses.lmc.repair import layer_stats, repair_targets, repaired_point, reset_batchnorm
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView
from tests.resnet_fixture import ConvBNPool, randomize_batchnorm, resnet18


def _pair(kind: str):
    if kind == "resnet":
        a, b = (randomize_batchnorm(resnet18(num_classes=10, width=4, in_channels=1, seed=s),
                                    seed=s) for s in (0, 1))
    else:
        torch.manual_seed(0)
        a, b = (randomize_batchnorm(ConvBNPool(), seed=s) for s in (0, 1))
    return a.eval(), b.eval()


def _channel_stats(model: nn.Module, x: torch.Tensor, names: list[str], inputs: bool = False):
    """Per-channel mean, (biased) std and unbiased variance of each module's output (or input),
    by plain hooks on the model's own eval forward (copied at once: the ResNet's in-place ReLU
    overwrites a BatchNorm's output right after the hook)."""
    seen = {}
    mods = dict(model.named_modules())

    def keep(n):
        return lambda _m, i, o: seen.__setitem__(n, (i[0] if inputs else o).double().clone())

    handles = [mods[n].register_forward_hook(keep(n)) for n in names]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for n in names:
        z = seen[n]
        z = z.movedim(1, -1).reshape(-1, z.shape[1]) if z.dim() > 2 else z
        out[n] = (z.mean(0), z.std(0, unbiased=False), z.var(0, unbiased=True))
    return out


def test_repair_targets():
    a, _ = _pair("resnet")
    spec = permutation_spec(a, torch.randn(2, 1, 16, 16))
    bns = [n for n, m in a.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 20 and repair_targets(a, spec) == bns  # fc is the output: no target
    c, _ = _pair("cnn")
    spec = permutation_spec(c, torch.randn(2, 1, 16, 16))
    # the convs' biases move with their BatchNorms' channels: the BN is the one to fix
    assert repair_targets(c, spec) == ["features.1", "features.5", "fc1"]


@pytest.mark.parametrize("kind", ["resnet", "cnn"])
def test_repaired_bn_channels_have_interpolated_statistics(kind):
    a, b = _pair(kind)
    x = torch.randn(300, 1, 16, 16)
    sa, sb = model_state(a), model_state(b)
    t = 0.4
    with assert_untouched(a), assert_untouched(b):
        targets = repair_targets(a, permutation_spec(a, x[:2]))
        view = ModelView(a, (x,))
        ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
        p = repaired_point(view, sb, list(sa), t, targets, ends)
    r = load_state_copy(a, p)
    got = _channel_stats(r, x, targets)
    ea, eb = _channel_stats(a, x, targets), _channel_stats(b, x, targets)
    for n in targets:
        torch.testing.assert_close(got[n][0], (1 - t) * ea[n][0] + t * eb[n][0], atol=2e-4,
                                   rtol=1e-4, msg=n)
        torch.testing.assert_close(got[n][1], (1 - t) * ea[n][1] + t * eb[n][1], atol=2e-4,
                                   rtol=1e-4, msg=n)
    bns = [n for n, m in r.named_modules() if isinstance(m, nn.BatchNorm2d)]
    seen = _channel_stats(r, x, bns, inputs=True)  # RESET: running stats = the data's
    for n in bns:
        torch.testing.assert_close(p[f"{n}.running_mean"].double(), seen[n][0], atol=1e-5,
                                   rtol=1e-5, msg=n)
        torch.testing.assert_close(p[f"{n}.running_var"].double(), seen[n][2], atol=1e-5,
                                   rtol=1e-4, msg=n)


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_repair_reproduces_the_endpoints(t):
    a, b = _pair("resnet")
    x = torch.randn(200, 1, 16, 16)
    sa, sb = model_state(a), model_state(b)
    targets = repair_targets(a, permutation_spec(a, x[:2]))
    view = ModelView(a, (x,))
    ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
    p = repaired_point(view, sb, list(sa), t, targets, ends)
    assert not torch.allclose(p["bn1.running_mean"], (sa, sb)[int(t)]["bn1.running_mean"])
    with torch.no_grad():  # different statistics and affine maps, the same function
        want = (a, b)[int(t)](x)
        torch.testing.assert_close(load_state_copy(a, p)(x), want, atol=1e-4, rtol=1e-4)


def test_reset_only_leaves_the_affine_maps():
    a, b = _pair("resnet")
    x = torch.randn(100, 1, 16, 16)
    sa, sb = model_state(a), model_state(b)
    view = ModelView(a, (x,))
    p = repaired_point(view, sb, list(sa), 0.5, [], ({}, {}), correct=False)
    q = {k: v.clone() for k, v in p.items()}
    reset_batchnorm(view, q)  # resetting a reset network changes nothing
    for k in p:
        torch.testing.assert_close(q[k], p[k], atol=1e-5, rtol=1e-5, msg=k)
    assert torch.equal(p["bn1.weight"], 0.5 * sa["bn1.weight"] + 0.5 * sb["bn1.weight"])


def test_one_batch_and_many_batches_agree():
    a, b = _pair("cnn")
    x = torch.randn(150, 1, 16, 16)
    sa, sb = model_state(a), model_state(b)
    targets = repair_targets(a, permutation_spec(a, x[:2]))
    states = []
    for batch_size in (None, 32):
        view = ModelView(a, (x,), batch_size=batch_size)
        ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
        states.append(repaired_point(view, sb, list(sa), 0.5, targets, ends))
    for k in states[0]:
        torch.testing.assert_close(states[1][k], states[0][k], atol=1e-5, rtol=1e-5, msg=k)


def test_repair_of_conv_outputs_without_batchnorm():
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 5, 3, padding=1)
            self.head = nn.Linear(5, 3)

        def forward(self, x):
            h = torch.relu(self.c2(torch.max_pool2d(torch.relu(self.c1(x)), 2)))
            return self.head(h.mean((2, 3)))

    torch.manual_seed(0)
    a, b = Plain(), Plain()
    x = torch.randn(200, 1, 8, 8)
    sa, sb = model_state(a), model_state(b)
    targets = repair_targets(a, permutation_spec(a, x[:2]))
    assert targets == ["c1", "c2"]
    view = ModelView(a, (x,))
    ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
    p = repaired_point(view, sb, list(sa), 0.5, targets, ends)
    got = _channel_stats(load_state_copy(a, p), x, targets)
    ea, eb = _channel_stats(a, x, targets), _channel_stats(b, x, targets)
    for n in targets:
        torch.testing.assert_close(got[n][1], (ea[n][1] + eb[n][1]) / 2, atol=1e-4, rtol=1e-4)


def test_lmc_repair_on_a_resnet_pair():
    a, b = _pair("resnet")
    x = torch.randn(120, 1, 16, 16)
    y = torch.randint(0, 10, (120,))
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, (x, y), matching="weights", repair=True, steps=3, refine=False)
    rep = res.repair
    assert len(rep["layers"]) == 20 and len(rep["reset_batchnorm"]) == 20
    assert all(v == pytest.approx(1.0, abs=1e-3) for v in rep["variance_ratio_repaired"].values())
    loss = nn.functional.cross_entropy
    with torch.no_grad():  # the repaired path starts at A and ends at the aligned B (= B)
        ends = [float(loss(a(x), y)), float(loss(b(x), y))]
    assert res.curves["repaired"]["loss"]["data"][[0, -1]] == pytest.approx(ends, abs=1e-4)
    assert res.aligned["frozen_groups"] == [] and res.aligned["unknown_ops"] == []


def test_statistics_are_taken_before_an_in_place_relu():
    """A Linear followed by ReLU(inplace=True): its output tensor is overwritten after the hook."""
    torch.manual_seed(0)
    a, b = (nn.Sequential(nn.Linear(4, 9), nn.ReLU(inplace=True), nn.Linear(9, 2)) for _ in "ab")
    x = torch.randn(400, 4)
    sa, sb = model_state(a), model_state(b)
    view = ModelView(a, (x,))
    ends = (layer_stats(view, sa, ["0"]), layer_stats(view, sb, ["0"]))
    with torch.no_grad():
        za, zb = a[0](x).double(), b[0](x).double()
    torch.testing.assert_close(ends[0]["0"][0], za.mean(0))  # pre-activation, not ReLU'd
    p = repaired_point(view, sb, list(sa), 0.5, ["0"], ends)
    with torch.no_grad():
        zr = load_state_copy(a, p)[0](x).double()
    torch.testing.assert_close(zr.std(0, unbiased=False),
                               (za.std(0, unbiased=False) + zb.std(0, unbiased=False)) / 2,
                               atol=1e-5, rtol=1e-5)
