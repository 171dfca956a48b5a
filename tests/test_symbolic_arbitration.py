"""The data arbitrate between formulas a network cannot tell apart.

A network fitted to ``exp(atanh(x2/x1))`` (I.34.14's ratio part) carries an error of its own;
against its values an imitation such as ``exp(c / sqrt(a x1^2/x2^2 + b))`` fits as well as the
true form, and the structure route's choice by simplicity picks the imitation. Closed forms:
the oracle below is the true function plus a smooth "network error" of relative size 1e-5; the
structure search must list a variant that *is* the true form (a refit to the exact function
leaves an error at rounding level), and :func:`arbitrate` must pick it from noise-free data
while keeping the network's choice when the data are too noisy to tell.
"""

from __future__ import annotations

import math

import sympy
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic.library import resolve
from analyses.symbolic.routes import Context, arbitrate
from analyses.symbolic.structure import separable_formula
from analyses.symbolic.univariate import fit_univariate


def _box(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    return torch.stack([3 + 7 * u[:, 0], 1 + u[:, 1]], 1)  # x1 in [3, 10], x2 in [1, 2]


def _truth(X):
    return torch.exp(torch.atanh(X[:, 1] / X[:, 0]))


def _network(X):  # the truth with a smooth error of relative size ~1e-5
    return _truth(X) * (1 + 1e-5 * torch.sin(3 * X[:, 0]) * torch.cos(5 * X[:, 1]))


def _context(X, y_dat):
    return Context(syms=fm.input_symbols(2), X=X, y_net=_network(X)[:, None],
                   y_dat=y_dat[:, None], sub=torch.arange(len(X)), seconds=20.0,
                   simplify_seconds=2.0, refit_steps=100, snap=True, snap_min_r2=0.999)


def _exact_after_refit(e, syms, X) -> bool:
    r = fm.refit(e, syms, X, _truth(X), steps=200)
    err = float(((fm.evaluate(r, syms, X) - _truth(X)) ** 2).mean() / _truth(X).var())
    return err < 1e-16


def test_the_structure_search_lists_the_true_form_among_its_variants():
    X = _box()
    syms = fm.input_symbols(2)
    variants: list = []
    expr, info = separable_formula(_network, X, resolve(None), syms, tol=1e-3,
                                   noise_mse=float(((_network(X) - _truth(X)) ** 2).mean()),
                                   tol_general=0.2, alternatives=variants)
    assert expr is not None, info
    assert 0 < len(variants) <= 100
    assert all(not (e.free_symbols - set(syms)) for e in variants)  # no placeholder left
    assert any(_exact_after_refit(e, syms, X) for e in [expr, *variants])


def test_noise_free_data_pick_the_true_form_and_noisy_data_keep_the_choice():
    X = _box()
    x1, x2 = fm.input_symbols(2)
    F = sympy.Float
    imitation = F(3.9) * sympy.exp(F(1.0) / sympy.sqrt(F(1.0) * x1**2 / x2**2 - F(0.7)))
    true_form = F(1.0) * sympy.exp(F(1.0) * sympy.atanh(F(0.9) * x2 / x1))
    line = F(1.0) * x2 / x1 + F(1.0)  # a cruder imitation with the fewest operations
    assert fm.op_count(line) < fm.op_count(true_form) < fm.op_count(imitation)

    # the network's choice first (candidate 0), as the structure route passes them
    got, rows = arbitrate([imitation, true_form, line], _context(X, _truth(X)), 0)
    assert got == true_form, rows
    assert rows[1]["mse_data"] < 1e-6 * min(rows[0]["mse_data"], rows[2]["mse_data"])

    g = torch.Generator().manual_seed(1)
    noisy = _truth(X) + 0.6 * _truth(X).std() * torch.randn(len(X), dtype=torch.float64,
                                                            generator=g)
    got, rows = arbitrate([imitation, true_form, line], _context(X, noisy), 0)
    assert got == imitation, rows  # all at the noise floor: no decisive evidence, the choice stays
    assert all(math.isfinite(r["mse_data"]) for r in rows)

    # decisive evidence against a choice, among runners-up: the fewest operations win
    padded = F(1.0) * sympy.exp(F(1.0) * sympy.atanh(F(0.9) * x2 / x1 + F(0.01)))
    assert fm.op_count(padded) > fm.op_count(true_form)
    got, rows = arbitrate([F(2.0) * x1 + F(1.0), padded, true_form], _context(X, _truth(X)), 0)
    assert got == true_form, rows


def test_univariate_runners_up_are_distinct_finite_and_within_the_band():
    x = torch.linspace(0.1, 0.6, 201, dtype=torch.float64)
    y = torch.exp(torch.atanh(x)) * (1 + 1e-3 * torch.sin(20 * x))  # a rough 'network'
    var = fm.input_symbols(1)[0]
    expr, info = fit_univariate(x, y, resolve(None), var, alternatives=6)
    alts = info.pop("_alternatives")
    assert 0 < len(alts) <= 6 and all(a != expr for a, _ in alts)
    assert len({a for a, _ in alts}) == len(alts)
    best = 1 - info["r2"]
    for a, r2 in alts:
        pred = fm.evaluate(a, [var], x[:, None])
        assert torch.isfinite(pred).all()
        err = float(((pred - y) ** 2).mean() / y.var())
        assert math.isclose(1 - r2, err, rel_tol=1e-6, abs_tol=1e-15)
        assert err <= 10 * max(best, 1e-300) + 1e-9
    assert "_alternatives" not in fit_univariate(x, y, resolve(None), var)[1]
