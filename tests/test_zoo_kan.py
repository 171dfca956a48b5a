"""The zoo's reference B-spline KAN against scipy's B-splines, pykan itself and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from inspect_kit.errors import ModelSpecError, NonFiniteError
from inspect_kit.zoo import build
from inspect_kit.zoo.kan import KAN, KANLayer


def _scipy_basis(x: np.ndarray, knots: np.ndarray, k: int) -> np.ndarray:
    """B_m(x) for m = 0..len(knots)-k-2 via scipy.interpolate.BSpline.basis_element."""
    cols = []
    for m in range(len(knots) - k - 1):
        b = BSpline.basis_element(knots[m : m + k + 2], extrapolate=False)
        cols.append(np.nan_to_num(b(x), nan=0.0))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_basis_matches_scipy_uniform_and_adaptive(k):
    layer = KANLayer(2, 3, grid=5, k=k)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(400, 2, generator=g) * 4 - 2  # covers the extension cells and outside
    for _ in range(2):
        B = layer.basis(x.double()).numpy()
        assert B.shape == (400, 2, 5 + k)
        for i in range(2):
            ref = _scipy_basis(x[:, i].double().numpy(), layer.grid[i].double().numpy(), k)
            np.testing.assert_allclose(B[:, i], ref, atol=1e-10)
        # float32 path too
        B32 = layer.basis(x).numpy()
        np.testing.assert_allclose(B32, B, atol=1e-6)
        # second round: a data-adaptive (non-uniform) grid
        layer.update_grid(torch.randn(300, 2, generator=g) ** 3)


def test_basis_zero_outside_grid_and_half_open():
    layer = KANLayer(1, 1, grid=4, k=3)
    t = layer.grid[0]
    x = torch.tensor([[t[0] - 1e-3], [t[-1]], [t[-1] + 1.0]])
    assert torch.all(layer.basis(x) == 0)
    # at an interior knot the order-0 cell on the right is active (half-open [t_m, t_{m+1}))
    l0 = KANLayer(1, 1, grid=4, k=0)
    B = l0.basis(l0.grid[0, 2].reshape(1, 1))
    assert B[0, 0].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_edge_values_sum_to_forward_and_formula():
    layer = KANLayer(3, 4, grid=6, k=3, base_fun="silu", generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        layer.bias.normal_()
        layer.scale_sp.uniform_(0.5, 1.5)
        layer.mask[1, 2] = 0.0
    x = torch.rand(50, 3) * 2.4 - 1.2
    phi = layer.edge_values(x)
    assert phi.shape == (50, 4, 3)
    torch.testing.assert_close(phi.sum(-1) + layer.bias, layer(x), atol=1e-6, rtol=0)
    assert torch.all(phi[:, 1, 2] == 0)
    # phi[j,i] from scipy's B-spline elements and the same coefficients (independent path; the
    # unclamped sum includes the k outer cells, where BSpline(t, c, k) itself is undefined)
    j, i = 2, 1
    xs = x[:, i].double().numpy()
    spl = _scipy_basis(xs, layer.grid[i].double().numpy(), 3) @ layer.coef[j, i].detach().double().numpy()
    ref = (layer.scale_base[j, i].item() * xs / (1 + np.exp(-xs))
           + layer.scale_sp[j, i].item() * spl)
    np.testing.assert_allclose(phi[:, j, i].detach().numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("base_fun", ["identity", "zero"])
def test_base_functions(base_fun):
    layer = KANLayer(2, 1, base_fun=base_fun)
    with torch.no_grad():
        layer.scale_sp.zero_()
        layer.scale_base.fill_(2.0)
    x = torch.tensor([[0.5, -0.25]])
    expected = 2 * (0.5 - 0.25) if base_fun == "identity" else 0.0
    assert layer(x).item() == pytest.approx(expected, abs=1e-7)


def _pykan():
    kan = pytest.importorskip("kan")
    return kan


def _copy_layer_to_pykan(ours: KANLayer, theirs) -> None:
    with torch.no_grad():
        theirs.grid.copy_(ours.grid)
        theirs.coef.copy_(ours.coef.permute(1, 0, 2))
        theirs.scale_base.copy_(ours.scale_base.T)
        theirs.scale_sp.copy_(ours.scale_sp.T)
        theirs.mask.copy_(ours.mask.T)


def test_layer_parity_with_pykan():
    kan = _pykan()
    ours = KANLayer(3, 2, grid=5, k=3, noise_scale=0.5, generator=torch.Generator().manual_seed(7))
    theirs = kan.KANLayer(in_dim=3, out_dim=2, num=5, k=3)
    with torch.no_grad():
        ours.scale_sp.uniform_(0.5, 2.0)
        ours.mask[0, 1] = 0
    _copy_layer_to_pykan(ours, theirs)
    x = torch.rand(300, 3) * 3 - 1.5  # includes inputs outside the grid (base branch only)
    y, _, postacts, postspline = theirs(x)
    torch.testing.assert_close(ours(x), y, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.edge_values(x), postacts, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.spline(x), postspline, atol=1e-6, rtol=0)


def test_update_grid_parity_with_pykan():
    kan = _pykan()
    ours = KANLayer(2, 3, grid=5, k=3, noise_scale=1.0)
    theirs = kan.KANLayer(in_dim=2, out_dim=3, num=5, k=3, grid_eps=0.02)
    _copy_layer_to_pykan(ours, theirs)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(2)) * 0.7
    ours.update_grid(x)
    theirs.update_grid_from_samples(x)
    torch.testing.assert_close(ours.grid, theirs.grid.data, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours(x), theirs(x)[0], atol=1e-5, rtol=0)


def test_update_grid_preserves_the_function():
    # smooth spline part: coef = least-squares fit of sin(2x) on the initial grid
    layer = KANLayer(1, 2, grid=8, k=3, grid_eps=0.02)
    xs = torch.linspace(-1, 1, 200).unsqueeze(1)
    with torch.no_grad():
        from inspect_kit.zoo.kan import fit_coef

        target = torch.stack([torch.sin(2 * xs[:, 0]), xs[:, 0] ** 2], dim=1).unsqueeze(-1)
        layer.coef.copy_(fit_coef(xs, target, layer.grid, layer.k))
    x = torch.rand(1000, 1, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    before = layer(x).detach()
    layer.update_grid(x)
    after = layer(x).detach()
    # the new cubic spline space on [-0.8, 0.8] represents the smooth old function to ~1e-4
    assert (after - before).abs().max() < 1e-3
    # knots now span the samples: first/last interior knots are the sample min/max
    interior = layer.grid[0, layer.k : -layer.k]
    assert interior[0].item() == pytest.approx(x.min().item(), abs=1e-6)
    assert interior[-1].item() == pytest.approx(x.max().item(), abs=1e-6)


def test_update_grid_is_exact_when_the_grid_does_not_change():
    layer = KANLayer(2, 2, grid=4, k=3, grid_eps=1.0, noise_scale=1.0)
    x = torch.linspace(-1, 1, 101).unsqueeze(1).repeat(1, 2)
    before = layer(x).detach()
    grid0 = layer.grid.clone()
    layer.update_grid(x)
    torch.testing.assert_close(layer.grid, grid0, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x).detach(), before, atol=1e-5, rtol=0)


def test_update_grid_keeps_constant_inputs_and_rejects_nan():
    layer = KANLayer(2, 2, grid=5, k=3, noise_scale=1.0)
    grid0, coef0 = layer.grid.clone(), layer.coef.detach().clone()
    x = torch.stack([torch.full((50,), 0.3), torch.linspace(-0.5, 0.5, 50)], 1)
    before = layer.edge_values(x).detach()
    layer.update_grid(x)
    assert torch.equal(layer.grid[0], grid0[0]) and torch.equal(layer.coef[:, 0], coef0[:, 0])
    assert not torch.equal(layer.grid[1], grid0[1])
    assert torch.equal(layer.edge_values(x)[:, :, 0], before[:, :, 0])
    with pytest.raises(NonFiniteError):
        layer.update_grid(torch.tensor([[float("nan"), 0.0]]))


def _pykan_net(ours: KAN):
    kan = _pykan()
    theirs = kan.KAN(width=list(ours.width), grid=ours.layers[0].grid_size, k=ours.layers[0].k,
                     seed=0, auto_save=False)
    for l, layer in enumerate(ours.layers):
        _copy_layer_to_pykan(layer, theirs.act_fun[l])
        with torch.no_grad():
            theirs.node_bias[l].copy_(layer.bias)
    return theirs


def test_network_and_regularization_parity_with_pykan():
    ours = KAN([3, 4, 2], grid=5, k=3, seed=1, noise_scale=0.5)
    with torch.no_grad():
        for layer in ours.layers:
            layer.bias.uniform_(-0.3, 0.3)
    state = torch.get_rng_state()
    theirs = _pykan_net(ours)
    torch.set_rng_state(state)
    x = torch.rand(256, 3) * 2 - 1
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=0)
    reg_theirs = theirs.reg("edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0)
    reg_ours = ours.regularization(x, 1.0, 2.0, metric="std_n")
    torch.testing.assert_close(reg_ours, reg_theirs, atol=1e-5, rtol=1e-6)
    # layer_inputs are pykan's cached activations
    for a, b in zip(ours.layer_inputs(x), theirs.acts[:-1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_regularization_mean_abs_closed_form():
    # one edge phi(x) = s * x: A = |s| mean|x|, p = A / (A + 1) for the row and the column
    m = KAN([1, 1], base_fun="identity")
    with torch.no_grad():
        m.layers[0].scale_sp.zero_()
        m.layers[0].scale_base.fill_(-1.5)
    x = torch.tensor([[0.5], [-1.0], [0.25], [0.25]])
    A = 1.5 * 0.5
    p = A / (A + 1)
    H = -p * math.log2(p + 1e-4)
    expected = 0.7 * A + 0.3 * 2 * H
    assert m.regularization(x, 0.7, 0.3).item() == pytest.approx(expected, rel=1e-6)


def test_kan_build_state_dict_and_rng():
    state = torch.get_rng_state()
    m = build("kan", width=[2, 5, 1], grid=5, k=3, seed=4)
    assert torch.equal(state, torch.get_rng_state())  # built from a local generator
    keys = {f"layers.{l}.{n}" for l in range(2)
            for n in ("grid", "mask", "coef", "scale_base", "scale_sp", "bias")}
    assert set(m.state_dict()) == keys
    assert m.layers[0].coef.shape == (5, 2, 8) and m.layers[1].grid.shape == (5, 12)
    same = KAN([2, 5, 1], seed=4)
    other = KAN([2, 5, 1], seed=5)
    for k, v in m.state_dict().items():
        assert torch.equal(v, same.state_dict()[k])
    assert not torch.equal(m.layers[0].coef, other.layers[0].coef)
    assert m.zoo_spec == {"name": "kan", "kwargs": {"width": [2, 5, 1], "grid": 5, "k": 3,
                                                     "seed": 4}}
    # init like pykan: tiny spline part, scale_base in +-1/sqrt(in)
    assert m.layers[0].coef.abs().max() < 0.1
    assert m.layers[0].scale_base.abs().max() <= 1 / math.sqrt(2)


def test_kan_flattens_and_update_grid_follows_inputs():
    m = KAN([4, 3, 1])
    x = torch.randn(64, 2, 2)
    assert m(x).shape == (64, 1)
    torch.testing.assert_close(m(x), m(x.reshape(64, 4)))
    m.update_grid(x * 3)
    ins = m.layer_inputs(x * 3)
    for layer, h in zip(m.layers, ins):
        assert torch.allclose(layer.grid[:, layer.k], h.min(0).values, atol=1e-5)
        assert torch.allclose(layer.grid[:, -layer.k - 1], h.max(0).values, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(width=[2]), dict(width="2,5,1"), dict(width=[2, 0, 1]),
                                    dict(width=[2, 1], base_fun="relu"),
                                    dict(width=[2, 1], grid_range=(1, -1))])
def test_bad_kan_specs(kwargs):
    with pytest.raises(ModelSpecError):
        build("kan", **kwargs)


def test_wrong_input_width():
    with pytest.raises(ModelSpecError, match="expects 2 input features"):
        KAN([2, 1])(torch.zeros(3, 5))
