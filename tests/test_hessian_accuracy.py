"""Hessian estimators against the exact dense Hessian (torch.func.hessian, float64).

Two small trained models: a ReLU MLP on digits (cross-entropy, indefinite Hessian) and a zoo
B-spline KAN on ``formula:exp_sin`` (MSE). The estimators run in the default float32; the truth
is computed independently in float64 by :func:`analyses.hessian.dense_hessian`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance

from analyses.hessian import dense_hessian, hessian
from inspect_kit.data import load_data
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build


def _train(model, x, y, loss, epochs, lr, batch=64):
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            b = perm[i:i + batch]
            opt.zero_grad()
            loss(model(x[b]), y[b]).backward()
            opt.step()
    for p in model.parameters():
        p.grad = None
    return model


def _mlp():
    d = load_data("digits")
    x, y = d.x_train[:600], d.y_train[:600]
    return _train(build("mlp", sizes=(64, 8, 10)), x, y, F.cross_entropy, 20, 1e-2), (x, y)


def _kan():
    d = load_data("formula:exp_sin")
    x, y = d.x_train[:200], d.y_train[:200]
    return _train(build("kan", width=[2, 3, 1]), x, y, F.mse_loss, 40, 1e-2), (x, y)


@pytest.fixture(scope="module", params=["mlp", "kan"])
def case(request):
    model, data = {"mlp": _mlp, "kan": _kan}[request.param]()
    dense = dense_hessian(model, data)  # float64 truth
    lam = dense.eigenvalues()
    with assert_untouched(model):
        res = hessian(model, data, top_k=5, which="both", density=True, blocks="layer",
                      seed=0, progress=False)
    return request.param, model, data, dense, lam, res


def test_top5_and_most_negative_within_1e4(case):
    name, _, _, _, lam, res = case
    assert lam[0] < 0, "the test model should have negative curvature"
    top = res.eigenvalues[:5]
    np.testing.assert_allclose(top, lam[::-1][:5], rtol=1e-4)
    assert res.eigenvalues[-1] == pytest.approx(lam[0], rel=1e-4)
    np.testing.assert_allclose(res.eigenvalues[-5:], lam[:5][::-1], rtol=1e-3)
    assert all(res.converged)
    assert np.all(np.diff(res.eigenvalues) <= 0), "eigenvalues must be sorted descending"
    # the residual bound holds: every exact eigenvalue nearest a Ritz value is within it
    for v, r in zip(res.eigenvalues, res.residuals):
        assert np.min(np.abs(lam - v)) <= r + 1e-6 * abs(lam).max()


def test_trace_hutchpp_100_products_within_1pct(case):
    _, _, _, _, lam, res = case
    exact = lam.sum()
    assert res.trace_method in ("hutch++", "exact")
    assert abs(res.trace - exact) <= 0.01 * abs(exact)
    assert abs(res.trace - exact) <= 4 * res.trace_stderr + 1e-6 * abs(exact)


def test_slq_density_wasserstein(case):
    _, _, _, _, lam, res = case
    d = res.density
    w = d["weights"] / d["weights"].shape[0]
    assert d["weights"].shape[0] >= 5
    np.testing.assert_allclose(d["weights"].sum(1), 1.0, rtol=1e-9)
    w1 = wasserstein_distance(d["nodes"].ravel(), lam, w.ravel())
    assert w1 <= 1e-3 * (lam[-1] - lam[0])
    # the broadened density integrates to one and the negative mass matches the exact count
    assert np.trapezoid(d["values"], d["grid"]) == pytest.approx(1.0, abs=1e-3)
    exact_neg = np.mean(lam < -d["threshold"])
    assert d["negative_mass"] == pytest.approx(exact_neg, abs=0.03)


def test_block_traces_sum_to_full_trace(case):
    _, _, _, dense, lam, res = case
    # tr H = sum_B tr H_BB exactly (dense truth), and the estimates agree within their errors
    exact_blocks = [torch.linalg.eigvalsh(dense.block(b["params"])).numpy() for b in res.blocks]
    assert sum(e.sum() for e in exact_blocks) == pytest.approx(lam.sum(), rel=1e-10)
    total = sum(b["trace"] for b in res.blocks)
    err = np.sqrt(sum(b["trace_stderr"] ** 2 for b in res.blocks))
    assert abs(total - lam.sum()) <= 4 * err + 1e-6 * abs(lam.sum())
    assert total == pytest.approx(lam.sum(), rel=0.03)
    for b, block in zip(res.blocks, exact_blocks):
        assert abs(b["trace"] - block.sum()) <= 4 * b["trace_stderr"] + 1e-6 * abs(block.sum())
        assert b["eigenvalues"][0] == pytest.approx(block[-1], rel=1e-4)
        assert b["eigenvalues"][-1] == pytest.approx(block[0], rel=1e-3, abs=1e-6 * block[-1])


def test_mlp_layer_blocks_psd_while_full_indefinite(case):
    name, _, _, _, lam, res = case
    if name != "mlp":
        pytest.skip("the PSD-block property is specific to piecewise-linear (ReLU) networks")
    scale = lam[-1]
    for b in res.blocks:  # every single-layer block of a ReLU net is J^T H_loss J >= 0
        assert b["eigenvalues"][-1] >= -1e-5 * scale
    assert lam[0] < -1e-3 * scale


def test_exact_backend_matches_dense(case):
    _, model, data, _, lam, _ = case
    with assert_untouched(model):
        ex = hessian(model, data, method="exact", top_k=3, which="both", progress=False)
    np.testing.assert_allclose(ex.eigenvalues, np.r_[lam[::-1][:3], lam[:3][::-1]], rtol=1e-10)
    assert ex.trace == pytest.approx(lam.sum(), rel=1e-10)
