"""The Hessian estimators within a byte budget: the paged basis (fused Gram-Schmidt sweep, a cap
that is a number of vectors, not of pages), thick-restart Lanczos in a basis the budget sizes,
the refusal naming what fits, and the HVP engine holding no parameter-sized copies.

Truths: dense float64 projections and eigendecompositions, closed-form spectra, the model's
autograd Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses.hessian import basis as basis_mod
from analyses.hessian import hessian
from analyses.hessian.basis import Basis, capacity
from analyses.hessian.lanczos import lanczos_eigs
from analyses.hessian.operator import HessianOperator, MatrixOperator
from inspect_kit.errors import SizeLimitError
from inspect_kit.testing import assert_untouched


def _orthonormal(m: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, m, generator=g, dtype=torch.float64))
    return q.T.contiguous()


@pytest.mark.parametrize("passes", [1, 2, 3])
def test_orthogonalize_equals_the_dense_projection(monkeypatch, passes):
    """Several pages, a short last page under a limit, and column chunks much smaller than n:
    w - Q Q^T w and Q^T w as a dense float64 computation gives them."""
    monkeypatch.setattr(basis_mod, "SWEEP_BYTES", 8 * 21 * 1024)  # 1024-column chunks
    n, m = 5000, 21
    Q = _orthonormal(m, n)
    B = Basis(n, torch.float64, torch.device("cpu"), limit=m)
    for row in Q:
        B.append(row)
    assert [p.shape[0] for p in B.pages] == [16, 5]
    w = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want_c = Q @ w
    want_w = w - Q.T @ want_c
    got_w, got_c = B.orthogonalize(w.clone(), passes=passes)
    np.testing.assert_allclose(got_c.numpy(), want_c.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_w.numpy(), want_w.numpy(), rtol=0, atol=1e-12)


def test_basis_never_allocates_beyond_its_limit():
    n = 100
    B = Basis(n, torch.float32, torch.device("cpu"), limit=3)
    for j in range(3):
        B.append(torch.eye(n)[j])
    assert B.allocated == 3 and B.nbytes == 3 * n * 4
    with pytest.raises(RuntimeError, match="full"):
        B.append(torch.eye(n)[3])
    B.truncate(2)
    B.append(torch.eye(n)[5])
    assert B.allocated == 3


def test_capacity_counts_vectors_not_pages():
    # 10^8 float32 entries per vector: 5 GB holds 12 of them (pages of 16 would hold none)
    assert capacity(10**8, 4, 5 * 10**9) == 12
    assert capacity(10, 8, 79) == 0


@pytest.mark.parametrize("which", ["largest", "both"])
def test_thick_restart_in_a_budget_sized_basis_finds_the_closed_form_spectrum(which):
    """A basis of k + 3 vectors (the smallest the budget allows) restarts many times and
    still converges to the exact eigenvalues of a matrix with known spectrum."""
    n, k = 300, 3
    lam = np.concatenate([[50.0, 47.0, 45.0, -10.0, -8.0, -7.0], np.linspace(0.0, 30.0, n - 6)])
    U = _orthonormal(n, n, seed=3).T
    A = MatrixOperator(U @ torch.diag(torch.as_tensor(lam)) @ U.T)
    want_n = 2 * k if which == "both" else k
    vectors = want_n + 3
    r = lanczos_eigs(A, k, which=which, memory=vectors * n * 8, max_steps=3000, progress=False)
    assert r.basis_size == vectors and r.restarts > 3
    srt = np.sort(lam)
    truth = srt[::-1][:k] if which == "largest" else np.concatenate([srt[::-1][:k], srt[:k][::-1]])
    np.testing.assert_allclose(np.sort(r.eigenvalues), np.sort(truth), rtol=0, atol=1e-4)
    assert all(r.converged)


def test_a_budget_below_the_minimum_basis_is_refused_with_what_fits():
    A = MatrixOperator(torch.diag(torch.arange(1.0, 51.0, dtype=torch.float64)))
    per = 50 * 8
    ok = lanczos_eigs(A, 2, memory=5 * per, progress=False)  # k + 3 = 5 vectors: runs
    np.testing.assert_allclose(ok.eigenvalues, [50.0, 49.0], atol=1e-8)
    with pytest.raises(SizeLimitError, match=r"at least 5 vectors.*holds 4"):
        lanczos_eigs(A, 2, memory=5 * per - 1, progress=False)


def _mlp() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(1)
    return net, (torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))


def test_hvp_engine_holds_no_parameter_copies_and_leaves_the_model_untouched():
    """The differentiation leaves share the parameters' storage (float32 model, float32
    products) and the view's flat theta is not built by the products."""
    net, data = _mlp()
    with assert_untouched(net):
        op = HessianOperator(net, data)
        leaves = op.view.products("hessian")._leaves
        for name, p in net.named_parameters():
            assert leaves[name].data_ptr() == p.data_ptr()
        assert op.view._theta is None
        op.matvec(torch.randn(op.n))
        assert op.view._theta is None
        # a float64 view casts (one copy) and the leaves share that copy
        op64 = HessianOperator(net, data, dtype="float64")
        leaves64 = op64.view.products("hessian")._leaves
        for name in leaves64:
            assert leaves64[name].data_ptr() == op64.view.state[name].data_ptr()


def test_hessian_runs_in_a_small_budget_and_refuses_below_it():
    net, data = _mlp()
    n = sum(p.numel() for p in net.parameters())
    with assert_untouched(net):
        full = hessian(net, data, top_k=2, trace=False, dtype="float64", progress=False)
        small = hessian(net, data, top_k=2, trace=False, dtype="float64", progress=False,
                        memory=5 * n * 8, max_steps=2000)
        np.testing.assert_allclose(small.eigenvalues, full.eigenvalues, rtol=1e-6)
        with pytest.raises(SizeLimitError, match="memory="):
            hessian(net, data, top_k=2, trace=False, dtype="float64", progress=False,
                    memory=5 * n * 8 - 1)


class _Diagonal:
    """``v -> d * v``: an operator with a known spectrum, in float32."""

    def __init__(self, d: torch.Tensor) -> None:
        self.d, self.n, self.dtype, self.device = d, d.shape[0], d.dtype, d.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.d


def test_long_float32_reductions_are_float64_accurate():
    """Inner products over 4M float32 entries of one sign (where one BLAS call drifts) agree
    with float64 to 1e-7."""
    from analyses.hessian.reductions import dot, norm, project

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4_000_003, generator=g) + 0.5
    y = torch.rand(4_000_003, generator=g)
    Q = torch.rand(3, 4_000_003, generator=g)
    xd, yd = x.double(), y.double()
    assert norm(x) == pytest.approx(float(xd.norm()), rel=1e-7)
    assert dot(x, y) == pytest.approx(float(xd @ yd), rel=1e-7)
    np.testing.assert_allclose(project([Q[:2], Q[2:]], y).numpy(),
                               (Q.double() @ yd).numpy(), rtol=1e-7)


def test_float32_lanczos_on_a_long_vector_keeps_float32_accuracy():
    """4M-entry float32 operator with eigenvalues 10, 9 and a bulk in [0, 5]: the top values
    to float32 accuracy (float32-accumulated reductions drift by 3e-6 here)."""
    n = 4_000_000
    g = torch.Generator().manual_seed(1)
    d = torch.rand(n, generator=g) * 5.0
    d[123], d[4567] = 10.0, 9.0
    r = lanczos_eigs(_Diagonal(d), 2, tol=1e-6, memory=40 * n * 4, progress=False)
    np.testing.assert_allclose(r.eigenvalues, [10.0, 9.0], rtol=1e-6)
