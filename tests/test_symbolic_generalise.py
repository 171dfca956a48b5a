"""Selection that imitation cannot fool, and outer functions of sums (generalised additivity).

Closed forms throughout: a flat cosine that is a parabola to within 0.2 % must lose to x^2 while
genuine cosines and exponentials keep their primitive; ``g(sum h_i(x_i))`` structures (an outer
log of a sum, a norm, an arcsine of a product of powers) must be found and recovered exactly
from an oracle; a non-separable function must give no candidate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic.additive import gradient, pair_residual
from analyses.symbolic.fit import fit_edges
from analyses.symbolic.library import resolve
from analyses.symbolic.select import choose
from analyses.symbolic.structure import separable_formula


# ------------------------------------------------------------------------------ imitation
def _choice(x, y):
    table = fit_edges(np.stack(x), np.stack(y), None, progress=False)
    return [c["function"] for c in choose(table)], table


def test_a_flat_cosine_loses_to_x2_and_real_transcendentals_keep_their_primitive():
    x = np.linspace(-1, 1, 201)
    noise = 1e-4 * np.random.default_rng(0).standard_normal(201)
    rows = {
        "flat cosine": (1 - np.cos(0.3 * x)) / 0.045,  # = x^2 - 0.0075 x^4 + ...
        "flat cosine, noisy": (1 - np.cos(0.6 * x)) / 0.18 + noise,
        "parabola with a spline-like bend": x**2 - 0.01 * x**4,
        "cos(2x)": np.cos(2 * x),
        "exp(x/2)": np.exp(0.5 * x),
        "sin(x/2)": np.sin(0.5 * x),
    }
    got, table = _choice([x] * len(rows), list(rows.values()))
    assert got == ["x^2", "x^2", "x^2", "sin", "exp", "sin"], dict(zip(rows, got))
    # without the degenerate-limit test the cosine wins the first three (it fits better)
    sin = table.names.index("sin")
    assert all(table.r2_val[e, sin] > table.r2_val[e, table.names.index("x^2")] for e in range(3))
    assert table.imitation()[:3, sin].all() and not table.imitation()[3, sin]


def test_imitation_needs_x2_in_the_library():
    x = np.linspace(-1, 1, 201)
    table = fit_edges(x[None], ((1 - np.cos(0.3 * x)) / 0.045)[None], "x,sin", progress=False)
    assert choose(table)[0]["function"] == "sin"  # nothing simpler to imitate: keep the fit


# ------------------------------------------------------------------------------ additivity
def _box(ranges, n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([r[0] for r in ranges], dtype=torch.float64)
    hi = torch.tensor([r[1] for r in ranges], dtype=torch.float64)
    return lo + (hi - lo) * torch.rand(n, len(ranges), generator=g, dtype=torch.float64)


def _oracle(truth, n):
    syms = fm.input_symbols(n)
    t = fm.parse_truth(truth, syms)
    return syms, t, lambda X: fm.evaluate(t, syms, X)


def test_pair_residual_is_zero_exactly_for_generalised_additive_functions():
    a = torch.linspace(-1, 1, 40, dtype=torch.float64)
    b = torch.linspace(0.5, 2, 12, dtype=torch.float64)
    A, B = torch.meshgrid(a, b, indexing="ij")
    Z = torch.stack([A.reshape(-1), B.reshape(-1)], 1)
    cases = {"log(x1^3 + exp(x2) + 3)": (lambda X: torch.log(X[:, 0] ** 3 + torch.exp(X[:, 1]) + 3),
                                         True),
             "x1 x2 + sin(x1 + x2)": (lambda X: X[:, 0] * X[:, 1] + torch.sin(X[:, 0] + X[:, 1]),
                                      False)}
    for name, (f, additive) in cases.items():
        G = gradient(f, Z)
        res, u, v = pair_residual(G[:, 0].reshape(40, 12), G[:, 1].reshape(40, 12))
        if additive:  # and the null vector is h1' = 3 x1^2, h2' = exp(x2), up to one scale
            assert res < 1e-10, name
            np.testing.assert_allclose(u / v[0], 3 * a.numpy() ** 2 / np.exp(0.5), atol=1e-9)
        else:
            assert res > 0.05, name  # above every tolerance the pipeline uses


@pytest.mark.parametrize("truth, ranges", [
    ("log(x1 + x2**2)", [(1, 2), (-1, 1)]),  # an outer log of a sum
    ("sqrt(x1**2 + x2**2)", [(-1, 1), (-1, 1)]),  # the norm (no split exists)
    pytest.param("8/(2 + x1**2 + x2**2)", [(-3, 3), (-3, 3)],  # Keijzer-14; 19 s, the log and
                 marks=pytest.mark.slow),                  # sqrt cases cover outer functions
    ("asin(x1/(x2*x3))", [(1, 2), (2, 5), (1, 5)]),  # Feynman I.30.5: a product of powers inside
])
def test_outer_functions_of_sums_are_recovered_exactly(truth, ranges):
    syms, t, oracle = _oracle(truth, len(ranges))
    X = _box(ranges)
    # the route is under test, not the library: nine primitives, distractors included
    lib = resolve(("x", "x^2", "x^3", "sqrt", "1/x", "exp", "log", "sin", "arcsin"))
    expr, info = separable_formula(oracle, X, lib, syms, tol=1e-4, tol_general=1e-3)
    assert expr is not None, info
    assert info["splits"][-1]["split"] == "general"
    y = oracle(X)
    e = fm.refit(expr, syms, X[:300], y[:300], steps=200)
    e, _ = fm.polish(e, syms, X[:300], y[:300], y[:300], X_check=X)
    box = np.array(ranges, dtype=float)
    assert fm.exact_match(e, t, syms, box)["exact"], (truth, str(e))


def test_a_non_separable_function_gives_no_candidate():
    """Feynman I.6.20 (the normal density with a width) is neither separable nor generalised
    additive: no candidate, so the edge route stands."""
    syms, _, oracle = _oracle("exp(-(x1/x2)**2/2)/(sqrt(2*pi)*x2)", 2)
    expr, info = separable_formula(oracle, _box([(-3, 3), (1, 3)]), resolve(None), syms,
                                   tol=1e-3, tol_general=0.03)
    assert expr is None
    assert info["splits"][0]["split"] is None and info["splits"][0]["general"]["residual"] > 0.1


def test_flat_derivative_profiles_form_no_product():
    """Every profile ``h_i' = 0`` (an input the block ignores along the probe) passes the
    ``c_i / x_i`` shape test with ``c_i = 0``: the product form must not divide by the pivot
    (a ZeroDivisionError ended the structure search on I.37.4's scaled form)."""
    from analyses.symbolic.additive import _product_form

    syms = fm.input_symbols(2)
    X = 1 + torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.linspace(1.0, 2.0, 20, dtype=torch.float64)
    prof = {0: (a, np.zeros(20)), 1: (a, np.zeros(20))}
    out = _product_form({0: syms[0], 1: syms[1]}, prof, [0, 1], X, syms)
    assert [name for name, _ in out] == ["sum"]
