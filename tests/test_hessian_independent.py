"""Hessian numbers against truths that share no code with the kit.

* a dense Hessian of a hand-written loss (the network written out as matrix products on a flat
  vector, differentiated by ``torch.autograd.functional.hessian``): no model view, no
  ``functional_call``, no ``torch.func``;
* a dense Hessian of a convolutional net with three input channels by central finite
  differences of plain ``loss.backward()`` gradients on a copy of the module;
* Lanczos on a 400-dimensional matrix with an isolated top eigenvalue, near-degenerate pairs and
  a cluster, where the three-term recurrence without reorthogonalisation returns ghost copies;
* Lanczos on matrices with repeated eigenvalues whose Krylov space breaks down;
* the options that had no test: ``blocks="param"`` and custom groups, ``include=``,
  ``density_threshold``, ``density_deflate``, ``method="exact"`` blocks.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.hessian import MatrixOperator, dense_hessian, hessian
from analyses.hessian.lanczos import lanczos_eigs, lanczos_tridiag
from inspect_kit.testing import assert_untouched

# -- a tanh MLP and its loss written by hand -------------------------------------------------


def _mlp() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))


def _data(n: int = 90) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(n, 5, generator=g) * torch.tensor([0.5, 1.0, 1.5, 2.0, 0.7])
    return x, torch.randint(0, 3, (n,), generator=g)


LAYOUT = [("0.weight", (6, 5)), ("0.bias", (6,)), ("2.weight", (3, 6)), ("2.bias", (3,))]


def _hand_loss(x: torch.Tensor, y: torch.Tensor):
    x = x.double()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for name, shape in LAYOUT:
            k = int(np.prod(shape))
            parts[name] = theta[i:i + k].reshape(shape)
            i += k
        h = torch.tanh(x @ parts["0.weight"].T + parts["0.bias"])
        z = h @ parts["2.weight"].T + parts["2.bias"]
        logp = z - torch.logsumexp(z, dim=1, keepdim=True)
        return -logp[torch.arange(len(y)), y].mean()

    return loss


@pytest.fixture(scope="module")
def truth():
    model, (x, y) = _mlp(), _data()
    theta = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    assert theta.shape == (57,)
    H = torch.autograd.functional.hessian(_hand_loss(x, y), theta)
    H = 0.5 * (H + H.T)
    offsets, i = {}, 0
    for name, shape in LAYOUT:
        offsets[name] = slice(i, i + int(np.prod(shape)))
        i += int(np.prod(shape))
    return model, (x, y), H, offsets


def _block(H: torch.Tensor, offsets: dict, names: list[str]) -> torch.Tensor:
    idx = torch.cat([torch.arange(offsets[n].start, offsets[n].stop) for n in names])
    return H[idx][:, idx]


def test_dense_hessian_equals_the_hand_written_loss(truth):
    model, data, H, _ = truth
    with assert_untouched(model):
        dense = dense_hessian(model, data, batch_size=25)  # 25, 25, 25, 15: weighted batches
    assert dense.matrix.shape == (57, 57)
    torch.testing.assert_close(dense.matrix, H, atol=1e-12, rtol=1e-10)


def test_iterative_and_exact_methods_equal_the_hand_written_loss(truth):
    model, data, H, _ = truth
    lam = torch.linalg.eigvalsh(H).numpy()
    assert lam[0] < 0 < lam[-1]
    with assert_untouched(model):
        it = hessian(model, data, dtype="float64", top_k=3, which="both", trace_budget=100,
                     batch_size=25, progress=False)
        ex = hessian(model, data, method="exact", top_k=3, which="both", progress=False)
    want = np.r_[lam[::-1][:3], lam[:3][::-1]]
    assert it.eigenvalues.shape == ex.eigenvalues.shape == (6,)
    np.testing.assert_allclose(it.eigenvalues, want, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ex.eigenvalues, want, rtol=1e-10, atol=1e-12)
    # n = 57 <= trace_budget: the trace is exact
    assert it.trace == pytest.approx(float(torch.trace(H)), rel=1e-9)
    assert ex.trace == pytest.approx(float(torch.trace(H)), rel=1e-10)


def _both_ends(ev: np.ndarray, k: int) -> np.ndarray:
    """What ``which="both"`` returns for ascending ``ev``: the k largest, then the k smallest
    not among them, descending."""
    top = list(range(len(ev) - 1, max(len(ev) - 1 - k, -1), -1))
    bottom = [i for i in range(min(k, len(ev))) if i not in top]
    return np.sort(ev[top + bottom])[::-1]


def test_param_blocks_and_custom_groups_are_the_diagonal_blocks(truth):
    """Per-block extreme eigenvalues (two at each end) and traces against the hand-written
    loss's diagonal blocks; the output layer's blocks have repeated zero eigenvalues (a null
    space of the softmax), whose copies Lanczos must find too."""
    model, data, H, off = truth
    groups = {"weights": ["0.weight", "2.weight"], "biases": "*.bias"}
    with assert_untouched(model):
        per_param = hessian(model, data, dtype="float64", top_k=1, trace=True, trace_budget=60,
                            blocks="param", block_top_k=2, progress=False)
        custom = hessian(model, data, dtype="float64", top_k=1, trace_budget=60, blocks=groups,
                         block_top_k=2, progress=False)
        exact = hessian(model, data, method="exact", top_k=1, blocks=groups, progress=False)
    members = {"weights": ["0.weight", "2.weight"], "biases": ["0.bias", "2.bias"],
               **{n: [n] for n, _ in LAYOUT}}
    assert [b["name"] for b in per_param.blocks] == [n for n, _ in LAYOUT]
    assert [b["name"] for b in custom.blocks] == [b["name"] for b in exact.blocks] == \
        ["weights", "biases"]
    for res in (per_param, custom):
        for b in res.blocks:
            assert b["params"] == members[b["name"]]
            ev = torch.linalg.eigvalsh(_block(H, off, members[b["name"]])).numpy()
            assert b["n"] == len(ev)
            np.testing.assert_allclose(b["eigenvalues"], _both_ends(ev, 2), rtol=1e-7,
                                       atol=1e-7 * float(np.abs(ev).max()))
            assert b["trace"] == pytest.approx(ev.sum(), rel=1e-9, abs=1e-12)  # n_B <= budget
    assert [b["n"] for b in custom.blocks] == [48, 9]
    # the exact method gives every block eigenvalue, in descending order
    for b in exact.blocks:
        assert b["params"] == members[b["name"]]
        ev = torch.linalg.eigvalsh(_block(H, off, members[b["name"]])).numpy()
        np.testing.assert_allclose(b["eigenvalues"], ev[::-1], rtol=1e-10, atol=1e-12)
        assert b["trace"] == pytest.approx(ev.sum(), rel=1e-10)


def test_include_restricts_the_hessian_to_the_selected_parameters(truth):
    model, data, H, off = truth
    sub = _block(H, off, ["2.weight", "2.bias"])
    ev = torch.linalg.eigvalsh(sub).numpy()
    with assert_untouched(model):
        res = hessian(model, data, include="2.*", dtype="float64", top_k=3, trace_budget=30,
                      progress=False)
    assert res.n_params == 21 and res.param_names == ["2.weight", "2.bias"]
    np.testing.assert_allclose(res.eigenvalues, ev[::-1][:3], rtol=1e-8)
    assert res.trace == pytest.approx(ev.sum(), rel=1e-9)


def test_density_threshold_and_deflation_reach_slq(truth):
    model, data, H, _ = truth
    lam = torch.linalg.eigvalsh(H).numpy()
    n = len(lam)
    thr = 0.3 * abs(lam[0])  # far above the default 1e-3 max|lambda|
    with assert_untouched(model):
        res = hessian(model, data, dtype="float64", top_k=0, trace=False, density=True,
                      density_probes=4, density_steps=30, density_threshold=thr,
                      density_deflate=8, progress=False)
        plain = hessian(model, data, dtype="float64", top_k=0, trace=False, density=True,
                        density_probes=4, density_steps=30, density_deflate=0, progress=False)
    d = res.density
    assert d["threshold"] == thr
    nodes, weights = np.asarray(d["nodes"]), np.asarray(d["weights"])
    # 8 deflated eigenpairs (all converge within 5 * 8 products here) + 30 Lanczos nodes
    assert nodes.shape == weights.shape == (4, 8 + 30)
    top = lam[np.argsort(-np.abs(lam))[:8]]
    for row_n, row_w in zip(nodes, weights):
        np.testing.assert_allclose(np.sort(row_n[:8]), np.sort(top), rtol=1e-8)
        np.testing.assert_allclose(row_w[:8], 1.0 / n, rtol=1e-12)
        assert row_w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.asarray(plain.density["nodes"]).shape == (4, 30)
    flat_w = weights.ravel() / 4
    assert d["negative_mass"] == pytest.approx(flat_w[nodes.ravel() < -thr].sum(), abs=1e-12)
    assert d["negative_mass"] == pytest.approx(np.mean(lam < -thr), abs=0.06)
    assert plain.density["threshold"] == pytest.approx(1e-3 * np.abs(plain.density["nodes"]).max())


# -- a convolutional net with three input channels, by finite differences -------------------


def _fd_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """Central differences of ``loss.backward()`` gradients on a float64 copy."""
    net = copy.deepcopy(model).double()
    params = list(net.parameters())
    theta0 = torch.nn.utils.parameters_to_vector(params).detach()

    def grad_at(theta: torch.Tensor) -> torch.Tensor:
        torch.nn.utils.vector_to_parameters(theta, params)
        net.zero_grad()
        F.cross_entropy(net(x.double()), y).backward()
        return torch.cat([p.grad.reshape(-1) for p in params]).clone()

    cols = []
    for j in range(len(theta0)):
        e = torch.zeros_like(theta0)
        e[j] = h
        cols.append((grad_at(theta0 + e) - grad_at(theta0 - e)) / (2 * h))
    H = torch.stack(cols, dim=1)
    return 0.5 * (H + H.T)


def test_conv_net_hessian_equals_finite_differences_of_gradients():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 2, 2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(40, 3, 4, 4, generator=g) * torch.tensor([0.5, 1.0, 2.0]).reshape(1, 3, 1, 1)
    y = torch.randint(0, 3, (40,), generator=g)
    H = _fd_hessian(model, x, y)
    assert H.shape == (83, 83)
    lam = torch.linalg.eigvalsh(H).numpy()
    scale = float(np.abs(lam).max())
    with assert_untouched(model):
        dense = dense_hessian(model, (x, y))
        res = hessian(model, (x, y), dtype="float64", top_k=2, which="both", trace_budget=90,
                      blocks="layer", block_top_k=1, progress=False)
    torch.testing.assert_close(dense.matrix, H, atol=1e-7 * scale, rtol=0)
    np.testing.assert_allclose(res.eigenvalues, np.r_[lam[::-1][:2], lam[:2][::-1]],
                               atol=1e-7 * scale, rtol=0)
    assert res.trace == pytest.approx(float(lam.sum()), abs=1e-7 * scale)
    conv = res.blocks[0]
    assert conv["name"] == "0" and conv["n"] == 26
    ev = torch.linalg.eigvalsh(H[:26, :26]).numpy()
    assert conv["eigenvalues"][0] == pytest.approx(ev[-1], abs=1e-7 * scale)
    assert conv["trace"] == pytest.approx(ev.sum(), abs=1e-7 * scale)


# -- Lanczos where orthogonality is lost -------------------------------------------------------


def _rotated(values: np.ndarray, seed: int = 1) -> MatrixOperator:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=g, dtype=torch.float64))
    return MatrixOperator(Q @ torch.diag(torch.as_tensor(values, dtype=torch.float64)) @ Q.T)


def _ghost_prone_spectrum() -> np.ndarray:
    """400 eigenvalues: an isolated top one (converges in a few steps and would come back as
    ghosts), near-degenerate pairs at both ends (need many more steps) and a uniform bulk."""
    bulk = np.random.default_rng(0).uniform(-1.0, 4.5, 390)
    ends = [100.0, 10.0, 9.999, 9.99, 9.9, -3.0, -3.0 + 1e-5, -2.9, -2.8, -2.7]
    return np.sort(np.r_[ends, bulk])[::-1].copy()


@pytest.mark.parametrize("which", ["largest", "both", "smallest"])
def test_lanczos_has_no_ghost_eigenvalues_on_a_400_dim_matrix(which):
    lam = _ghost_prone_spectrum()
    op = _rotated(lam)
    r = lanczos_eigs(op, 5, which=which, tol=1e-10, progress=False)
    want = {"largest": lam[:5], "smallest": lam[-5:], "both": np.r_[lam[:5], lam[-5:]]}[which]
    assert r.eigenvalues.shape == want.shape
    np.testing.assert_allclose(r.eigenvalues, want, rtol=1e-9, atol=1e-9)
    assert r.converged.all()
    # every returned value is a distinct eigenvalue: no value repeats
    assert np.min(np.abs(np.diff(r.eigenvalues))) > 1e-7


def test_slq_quadrature_has_one_node_per_isolated_eigenvalue():
    """SLQ's Lanczos (one basis per probe) on the same matrix: the isolated top eigenvalue is one
    node carrying the probe's squared component, not several ghost nodes sharing it."""
    lam = _ghost_prone_spectrum()
    op = _rotated(lam)
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, 400, generator=g, dtype=torch.float64)
    tri = lanczos_tridiag(op.matvec, v, 120)
    assert tri.alpha.shape == tri.beta.shape == (2, 120)
    evals, evecs = torch.linalg.eigh(op.matrix)
    assert evals[-1] == pytest.approx(100.0)
    top = evecs[:, -1]
    for i in range(2):
        theta, s = tri.ritz(i)
        near = np.abs(theta - 100.0) < 1e-6
        assert int(near.sum()) == 1, theta[-5:]
        share = float((v[i] @ top) ** 2 / (v[i] @ v[i]))
        assert float(s[0, near][0] ** 2) == pytest.approx(share, rel=1e-8)


@pytest.mark.parametrize("lam,which,want", [
    (np.r_[np.zeros(6), 4.0, np.linspace(0.5, 3.5, 11)], "smallest", [0.0, 0.0, 0.0]),
    (np.repeat([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], 2), "largest", [5.0, 5.0, 4.0]),
])
def test_lanczos_finds_copies_of_repeated_eigenvalues_after_a_breakdown(lam, which, want):
    """One start vector's Krylov space holds one copy of each distinct eigenvalue and breaks
    down there (13 and 6 dimensions of 18 and 12), just as the wanted Ritz values converge:
    the copies are only found by continuing in the complement before stopping."""
    op = _rotated(lam, seed=2)
    r = lanczos_eigs(op, 3, which=which, progress=False)
    assert r.eigenvalues.shape == (3,)
    np.testing.assert_allclose(r.eigenvalues, want, atol=1e-9)
    assert r.converged.all()
