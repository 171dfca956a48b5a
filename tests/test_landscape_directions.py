"""Directions: filter norms, ignore policy, PCA against sklearn/numpy, interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses.landscape.directions import (
    direction_info,
    filter_axes,
    interpolation_direction,
    pca_directions,
    random_directions,
)
from inspect_kit import zoo
from inspect_kit.errors import OptionError
from inspect_kit.params import named_params
from inspect_kit.testing import assert_untouched


def _check_filter_norms(d: torch.Tensor, w: torch.Tensor, lead: int) -> None:
    """Independent per-filter norms: flatten the ``lead`` leading axes, norm over the rest."""
    n = int(np.prod(w.shape[:lead]))
    dn = d.reshape(n, -1).double().norm(dim=1)
    wn = w.reshape(n, -1).double().norm(dim=1)
    assert torch.allclose(dn, wn, atol=1e-6, rtol=0), (dn - wn).abs().max()


def test_mlp_linear_rows_and_biases_zero():
    m = zoo.build("mlp", sizes=(16, 12, 12, 4))
    with assert_untouched(m):
        d1, d2 = random_directions(m, 2, seed=3)
    th = named_params(m)
    for name, w in th.items():
        if w.dim() == 2:
            _check_filter_norms(d1[name], w, 1)
            _check_filter_norms(d2[name], w, 1)
        else:
            assert torch.count_nonzero(d1[name]) == 0, name  # biasbn: biases not perturbed
    # Gaussian, not U[0, 1): about half the entries are negative
    w0 = d1["layers.0.weight"]
    assert 0.3 < float((w0 < 0).float().mean()) < 0.7


def test_ignore_none_and_layer_norm():
    m = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    th = named_params(m)
    (d,) = random_directions(m, 1, seed=0, ignore=None)
    assert torch.allclose(d["0.bias"].norm(), th["0.bias"].norm(), atol=1e-6)
    (dl,) = random_directions(m, 1, seed=0, norm="layer")
    assert torch.allclose(dl["0.weight"].norm(), th["0.weight"].norm(), atol=1e-6)
    assert not torch.allclose(dl["0.weight"].norm(dim=1), th["0.weight"].norm(dim=1), atol=1e-3)
    (dn,) = random_directions(m, 1, seed=0, norm="none")
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(th["0.weight"].shape, generator=g)
    assert torch.equal(dn["0.weight"], raw)


def test_seed_reproducible_and_distinct():
    m = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    a = random_directions(m, 2, seed=1)
    b = random_directions(m, 2, seed=1)
    c = random_directions(m, 2, seed=2)
    assert torch.equal(a[0]["0.weight"], b[0]["0.weight"])
    assert not torch.equal(a[0]["0.weight"], c[0]["0.weight"])
    assert not torch.equal(a[0]["0.weight"], a[1]["0.weight"])


def test_conv_filters_are_output_channels():
    # three input channels: per output channel and per (out, in) kernel normalisation differ
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    (d,) = random_directions(m, 1, seed=0)
    w = m[0].weight.detach()
    assert w.shape == (4, 3, 3, 3)
    _check_filter_norms(d["0.weight"], w, 1)
    # one scale factor per output channel: kernels keep the raw draw's unequal norms
    kernel_ratio = d["0.weight"].norm(dim=(2, 3)) / w.norm(dim=(2, 3))  # (out, in)
    assert float(kernel_ratio.std(dim=1).min()) > 0.05


def test_kan_edge_filters():
    m = zoo.build("kan", width=[4, 3, 2])
    axes = filter_axes(m)
    assert axes["layers.0.coef"] == 2 and axes["layers.0.scale_base"] == 1
    with assert_untouched(m):
        (d,) = random_directions(m, 1, seed=0)
    th = named_params(m)
    coef = th["layers.0.coef"]
    # one filter per edge (j, i): the coefficient vector coef[j, i, :]
    assert torch.allclose(d["layers.0.coef"].norm(dim=-1), coef.norm(dim=-1), atol=1e-6)
    _check_filter_norms(d["layers.1.scale_sp"], th["layers.1.scale_sp"], 1)
    assert torch.count_nonzero(d["layers.0.bias"]) == 0


def test_vit_attention_filters():
    m = zoo.build("vit", attention="fourier_karat", dim=16, depth=1, heads=2)
    (d,) = random_directions(m, 1, seed=0)
    th = named_params(m)
    qkv = th["blocks.0.attn.qkv.weight"]
    assert torch.allclose(d["blocks.0.attn.qkv.weight"].norm(dim=1), qkv.norm(dim=1), atol=1e-6)
    coef = th["blocks.0.attn.attn_fn.coef"]  # (heads, 2, G): one filter per head
    assert coef.shape[0] == 2
    assert torch.allclose(d["blocks.0.attn.attn_fn.coef"].reshape(2, -1).norm(dim=1),
                          coef.reshape(2, -1).norm(dim=1), atol=1e-6)
    _check_filter_norms(d["blocks.0.attn.proj.weight"], th["blocks.0.attn.proj.weight"], 1)


def _trajectory(T: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    base = {"a.weight": torch.randn(4, 3, generator=g), "a.bias": torch.randn(4, generator=g)}
    out = []
    for _ in range(T):
        base = {k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        out.append(dict(base))
    return out


def test_pca_against_sklearn_and_numpy():
    from sklearn.decomposition import PCA

    traj = _trajectory()
    center = traj[-1]
    dirs, ratio, sv = pca_directions(traj, center, 2, ignore=None)
    M = np.stack([np.concatenate([(s[k] - center[k]).double().numpy().ravel() for k in center])
                  for s in traj])
    pca = PCA(n_components=2).fit(M)
    assert np.allclose(ratio, pca.explained_variance_ratio_, atol=1e-10)
    # covariance eigen-decomposition (a different algorithm) agrees too
    C = np.cov(M.T)
    ev = np.sort(np.linalg.eigvalsh(C))[::-1]
    assert np.allclose(ratio, ev[:2] / ev.sum(), atol=1e-8)
    for k in range(2):
        v = np.concatenate([dirs[k][n].double().numpy().ravel() for n in center])
        assert abs(abs(v @ pca.components_[k]) - 1) < 1e-8


def test_pca_ignore_biasbn_zeroes_biases():
    traj = _trajectory()
    dirs, _, _ = pca_directions(traj, traj[-1], 2)
    assert torch.count_nonzero(dirs[0]["a.bias"]) == 0
    with pytest.raises(OptionError):
        pca_directions(traj[:2], traj[-1], 2)


def test_interpolation_direction_and_info():
    a = {"w": torch.randn(3, 4)}
    b = {"w": torch.randn(3, 4)}
    d = interpolation_direction(a, b)
    assert torch.allclose(a["w"] + d["w"], b["w"], atol=1e-6)
    d1, d2 = {"w": torch.randn(3, 4)}, {"w": torch.randn(3, 4)}
    info = direction_info([d1, d2], a)
    x, y, t = (v["w"].double().numpy().ravel() for v in (d1, d2, a))
    assert info["cos_d1_d2"] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert info["norm_ratio_d2"] == pytest.approx(np.linalg.norm(y) / np.linalg.norm(t))
