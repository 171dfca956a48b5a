"""The HVP operator and the estimators on closed-form problems; safety contracts.

Truths: the dense Hessian by torch.func.hessian (float64) for products; diagonal matrices with
known spectra for Lanczos / Hutch++ / Hutchinson; the model snapshot for "untouched".
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from analyses.hessian import (
    HessianOperator,
    HessianResult,
    MatrixOperator,
    dense_hessian,
    hessian,
)
from analyses.hessian.hutchinson import hutchinson_trace
from analyses.hessian.hutchpp import hutchpp_trace
from analyses.hessian.lanczos import lanczos_eigs
from inspect_kit.errors import InspectKitError, OptionError, SizeLimitError
from inspect_kit.testing import assert_untouched


def _net(dropout=False, bn=False, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 6)]
    if bn:
        layers.append(nn.BatchNorm1d(6))
    layers += [nn.Tanh()] + ([nn.Dropout(0.5)] if dropout else []) + [nn.Linear(6, 3)]
    return nn.Sequential(*layers)


def _data(n=90, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("cache,vectorize", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_hvp_equals_dense_hessian_times_v(cache, vectorize, dtype):
    model, data = _net(), _data()
    H = dense_hessian(model, data).matrix
    with assert_untouched(model):
        op = HessianOperator(model, data, dtype=dtype, cache_graph=cache, vectorize=vectorize)
        V = torch.randn(4, op.n, dtype=torch.float64)
        got = op.matvec(V.to(dtype)).double()
        one = op.matvec(V[0].to(dtype)).double()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, V @ H, atol=tol, rtol=tol)
    torch.testing.assert_close(one, H @ V[0], atol=tol, rtol=tol)
    assert op.hvp_count == 5


def test_batches_weighted_by_sample_count():
    model, (x, y) = _net(), _data(n=101)
    H = dense_hessian(model, (x, y)).matrix
    v = torch.randn(H.shape[0], dtype=torch.float64)
    for kw in ({"batch_size": 30}, {"batch_size": 30, "cache_graph": False}):
        op = HessianOperator(model, (x, y), dtype=torch.float64, **kw)  # 30, 30, 30, 11
        torch.testing.assert_close(op.matvec(v), H @ v, atol=1e-12, rtol=1e-12)
    loader = [(x[:7], y[:7]), (x[7:], y[7:])]  # very uneven batches
    op = HessianOperator(model, loader, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), H @ v, atol=1e-12, rtol=1e-12)


class _WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _net()
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.net(x)


def test_frozen_and_unused_parameters_are_skipped():
    model = _WithUnused()
    model.net[0].bias.requires_grad_(False)
    with assert_untouched(model), pytest.warns(UserWarning, match="does not use"):
        op = HessianOperator(model, _data(), dtype=torch.float64)
    assert "net.0.bias" not in op.names and "unused.weight" in op.skipped
    assert op.n == 5 * 6 + 6 * 3 + 3
    H = dense_hessian(model, _data(), include=op.names).matrix
    v = torch.randn(op.n, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), H @ v, atol=1e-12, rtol=1e-12)


def test_restricted_block_is_the_diagonal_block():
    model, data = _net(), _data()
    dense = dense_hessian(model, data)
    op = HessianOperator(model, data, dtype=torch.float64)
    names = ["2.weight", "2.bias"]
    sub = op.restrict(names)
    v = torch.randn(sub.n, dtype=torch.float64)
    torch.testing.assert_close(sub.matvec(v), dense.block(names) @ v, atol=1e-12, rtol=1e-12)
    assert op.total_hvp_count == 1 and sub.hvp_count == 1


def test_mode_eval_default_and_train_warns_and_restores():
    model = _net(dropout=True, bn=True)
    model.train()
    x, y = _data()
    with assert_untouched(model):
        a = hessian(model, (x, y), top_k=2, trace=False, progress=False)
        b = hessian(model, (x, y), top_k=2, trace=False, progress=False)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-5)  # eval: deterministic
    model.eval()
    with assert_untouched(model), pytest.warns(UserWarning, match="train mode"):
        hessian(model, (x, y), top_k=1, trace=False, model_mode="train", progress=False)


def test_untouched_after_an_error():
    model, (x, y) = _net(), _data()
    model[0].weight.grad = torch.ones_like(model[0].weight)  # a user's own .grad stays as is
    calls = {"n": 0}

    def bad_loss(out, target):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("loss exploded")
        return nn.functional.cross_entropy(out, target)

    with assert_untouched(model), pytest.raises(RuntimeError, match="exploded"):
        hessian(model, (x, y), loss=bad_loss, batch_size=30, top_k=2, progress=False)
    with assert_untouched(model), pytest.raises(InspectKitError, match="cannot evaluate"):
        hessian(model, (torch.randn(10, 4), torch.zeros(10, dtype=torch.long)), progress=False)


def test_float64_on_request():
    model, data = _net(), _data()
    r = hessian(model, data, dtype=torch.float64, top_k=1, trace=False, progress=False)
    lam = dense_hessian(model, data).eigenvalues()
    assert r.dtype == "float64"
    assert r.eigenvalues[0] == pytest.approx(lam[-1], rel=1e-10)


def test_bad_options_raise_clear_errors():
    model, data = _net(), _data()
    with pytest.raises(OptionError, match="which"):
        hessian(model, data, which="top", progress=False)
    with pytest.raises(OptionError, match="backend"):
        hessian(model, data, backend="torch", progress=False)
    with pytest.raises(OptionError, match="include"):
        hessian(model, data, include="nope.*", progress=False)
    with pytest.raises(SizeLimitError, match="max_params"):
        dense_hessian(model, data, max_params=10)


# -- estimators on matrices with a known spectrum ------------------------------------------

def _diag_op(values, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=g, dtype=torch.float64))
    return MatrixOperator(Q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ Q.T)


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude", "both"])
def test_lanczos_closed_form(which):
    lam = np.r_[-3.0, -2.5, np.linspace(-0.1, 1.0, 200), 1.8, 2.0]
    op = _diag_op(lam)
    r = lanczos_eigs(op, 2, which=which, return_vectors=True, progress=False)
    want = {"largest": [2.0, 1.8], "smallest": [-2.5, -3.0], "magnitude": [2.0, -2.5, -3.0][1:],
            "both": [2.0, 1.8, -2.5, -3.0]}[which]
    if which == "magnitude":
        want = [-2.5, -3.0]
    np.testing.assert_allclose(r.eigenvalues, want, rtol=1e-8)
    assert r.converged.all()
    for val, vec, res in zip(r.eigenvalues, r.vectors, r.residuals):
        true_res = float((op.matrix @ vec - val * vec).norm())
        assert true_res <= 10 * res + 1e-8 and abs(float(vec.norm()) - 1) < 1e-8


def test_lanczos_finds_repeated_eigenvalues():
    op = _diag_op(np.r_[np.zeros(30), 5.0, 5.0, 5.0])
    r = lanczos_eigs(op, 3, progress=False)
    np.testing.assert_allclose(r.eigenvalues, [5.0, 5.0, 5.0], rtol=1e-8)


def test_trace_estimators_closed_form():
    lam = 1.0 / np.arange(1, 401) ** 1.5  # decaying, like Hessian spectra
    op = _diag_op(lam)
    tr = lam.sum()
    errs_pp = [hutchpp_trace(op, 60, seed=s, progress=False).trace - tr for s in range(20)]
    errs_h = [hutchinson_trace(op, 60, seed=s, progress=False).trace - tr for s in range(20)]
    assert np.sqrt(np.mean(np.square(errs_pp))) < 0.5 * np.sqrt(np.mean(np.square(errs_h)))
    est = hutchinson_trace(op, 60, seed=0, progress=False)
    assert abs(est.trace - tr) < 4 * est.stderr
    assert hutchpp_trace(_diag_op(lam[:50]), 60, progress=False).trace == pytest.approx(
        lam[:50].sum(), rel=1e-10)  # n <= budget: exact


def test_result_roundtrip(tmp_path):
    model, data = _net(), _data()
    r = hessian(model, data, top_k=2, which="both", density=True, density_probes=5,
                density_steps=20, blocks="layer", progress=False, return_vectors=True)
    assert r.eigenvectors is not None and r.eigenvectors.shape == (4, r.n_params)
    path = tmp_path / "h.json"
    r.save(path)
    back = HessianResult.load(path)
    np.testing.assert_allclose(back.eigenvalues, r.eigenvalues)
    np.testing.assert_allclose(back.density["values"], r.density["values"])
    assert back.blocks[0]["name"] == r.blocks[0]["name"]
    assert "eigenvectors" not in r.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(r.wide_frame()) == 4
