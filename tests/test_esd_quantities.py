"""ESD columns that had no test: matrix entropy, log-alpha-norm and the ``randomize`` outputs.

Truths: closed forms from numpy's SVD (entropy over the numerical rank of a rank-deficient
matrix, ``log10 sum lambda^alpha``), WeightWatcher 0.7.7's own columns on the same weights, and
random-matrix theory for the element-shuffled matrix: an ``N x M`` matrix with iid entries of
second moment ``s^2`` has ``lambda_max(W^T W) ~ s^2 (sqrt(N) + sqrt(M))^2`` (Geman 1980; the
Marchenko-Pastur edge), whatever structure the unshuffled matrix had.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses.esd import esd
from inspect_kit.testing import assert_untouched


def _structured(seed: int = 0) -> nn.Module:
    """Two layers: a 200x64 one of rank 10 (10 random input columns, 54 exactly zero ones, in a
    random order: entropy over the rank) and a 40x200 one with a strong rank-2 component (a
    spiked ESD that shuffling destroys)."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 40))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        cols = torch.zeros(200, 64)
        cols[:, :10] = torch.randn(200, 10, generator=g) * torch.linspace(0.2, 2.0, 10)
        m[0].weight.copy_(cols[:, torch.randperm(64, generator=g)])
        m[2].weight.add_(torch.randn(40, 2, generator=g) @ torch.randn(2, 200, generator=g) / 20)
    return m


def _spiked(seed: int = 0) -> nn.Module:
    """Three dense layers (64, 120 and 40 eigenvalues: WeightWatcher's 5-replica and 1-replica
    randomisation branches), each with a strong rank-2 component."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 120), nn.ReLU(),
                      nn.Linear(120, 40))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for lin in (m[0], m[2], m[4]):
            out, inp = lin.weight.shape
            lin.weight.add_(torch.randn(out, 2, generator=g) @ torch.randn(2, inp, generator=g)
                            * 0.5 / math.sqrt(inp))
    return m


def _svals(W: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(W.detach().double().numpy(), compute_uv=False)


def test_entropy_and_log_alpha_norm_closed_forms():
    model = _structured()
    with assert_untouched(model):
        res = esd(model, method="compat", mp_fit=False, n_boot=0, progress=False)
    assert [r["name"] for r in res.layers] == ["0.weight", "2.weight"]
    for name, W, rank in (("0.weight", model[0].weight, 10), ("2.weight", model[2].weight, 40)):
        row = res.row(name)
        s = _svals(W)
        assert s.shape == (min(W.shape),)
        assert np.linalg.matrix_rank(W.detach().double().numpy()) == rank
        lam = s**2
        p = lam[: rank] / lam.sum()  # the numerically zero eigenvalues carry no mass
        want = -np.sum(p * np.log(p)) / math.log(rank)
        assert row["entropy"] == pytest.approx(want, rel=1e-9)
        alpha = row["alpha"]
        assert math.isfinite(alpha) and alpha > 1
        assert row["log_alpha_norm"] == pytest.approx(math.log10(np.sum(lam**alpha)), rel=1e-9)
        assert row["log_norm"] == pytest.approx(math.log10(lam.sum()), rel=1e-12)
    # normalised by log(rank), not log(64): the value over all 64 eigenvalues would be lower
    assert res.row("0.weight")["entropy"] > 1.1 * res.row("0.weight")["entropy"] * \
        math.log(10) / math.log(64)


def test_entropy_and_log_alpha_norm_equal_weightwatcher():
    from analyses.esd.ww_backend import run_weightwatcher, ww_rows

    model = _structured(1)
    ours = esd(model, method="compat", mp_fit=False, n_boot=0, progress=False)
    theirs = {r["name"]: r for r in ww_rows(run_weightwatcher(model, mp_fit=False))}
    assert set(theirs) == {"0.weight", "2.weight"}
    for name, t in theirs.items():
        o = ours.row(name)
        assert o["log_alpha_norm"] == pytest.approx(t["log_alpha_norm"], rel=1e-9)
        assert o["entropy"] == pytest.approx(t["entropy"], rel=1e-6)  # WW adds 1e-10 to p


def _mp_edge(W: torch.Tensor) -> float:
    """``s^2 (sqrt(N) + sqrt(M))^2`` with ``s^2`` the mean squared entry (no 1/N scaling)."""
    w = W.detach().double()
    return float((w**2).mean()) * (math.sqrt(w.shape[0]) + math.sqrt(w.shape[1])) ** 2


def test_randomize_gives_the_shuffled_matrix_marchenko_pastur_edge():
    model = _spiked(2)
    with assert_untouched(model):
        res = esd(model, method="compat", randomize=True, n_boot=0, seed=5, progress=False)
    assert [r["name"] for r in res.layers] == ["0.weight", "2.weight", "4.weight"]
    for lin, row in zip((model[0], model[2], model[4]), res.layers):
        lam_max = float(_svals(lin.weight)[0] ** 2)
        edge = _mp_edge(lin.weight)
        assert lam_max > 1.5 * edge  # the planted structure sticks out of the random bulk
        assert row["max_rand_eval"] == pytest.approx(edge, rel=0.1)
        assert row["ww_softrank"] == pytest.approx(row["max_rand_eval"] / lam_max, rel=1e-12)
        assert row["rand_num_spikes"] == 0  # a shuffled matrix has no spike
        assert row["rand_bulk_max"] == pytest.approx(edge, rel=0.2)
        assert 0.01 < row["rand_distance"] <= math.sqrt(math.log(2))  # JS distance (nats)
    # seeded: the same seed gives the same draw
    again = esd(model, method="compat", randomize=True, n_boot=0, seed=5, progress=False)
    assert again.row("2.weight")["max_rand_eval"] == res.row("2.weight")["max_rand_eval"]


def _compare_randomize_with_weightwatcher(model: nn.Module) -> None:
    from analyses.esd.ww_backend import run_weightwatcher, ww_rows

    ours = esd(model, method="compat", randomize=True, n_boot=0, progress=False)
    state = np.random.get_state()
    np.random.seed(0)  # WeightWatcher shuffles with numpy's global generator: fix its draw
    try:
        theirs = {r["name"]: r for r in ww_rows(run_weightwatcher(model, randomize=True,
                                                                  mp_fit=False))}
    finally:
        np.random.set_state(state)
    assert set(theirs) == {r["name"] for r in ours.layers}
    for name, t in theirs.items():
        o = ours.row(name)
        assert o["max_rand_eval"] == pytest.approx(t["max_rand_eval"], rel=0.15)
        assert o["ww_softrank"] == pytest.approx(t["ww_softrank"], rel=0.15)
        assert o["rand_num_spikes"] == t["rand_num_spikes"]
        assert o["rand_distance"] == pytest.approx(t["rand_distance"], rel=0.25, abs=0.02)


def test_randomize_outputs_match_weightwatcher_on_one_layer():
    """WeightWatcher's own randomised ESD (its random draw, not ours: agreement within the
    fluctuation of the largest eigenvalue) on one 200x120 layer (about 1 s)."""
    _compare_randomize_with_weightwatcher(_spiked(3)[2:3])


@pytest.mark.slow
def test_randomize_outputs_match_weightwatcher():
    """Every layer, including the 5-replica branch of matrices with under 100 eigenvalues (~3 s
    of WeightWatcher's MP refits; the closed-form test covers that branch quickly)."""
    _compare_randomize_with_weightwatcher(_spiked(3))
