"""Symbolic edge fitting against closed-form truths: y = c f(a x + b) + d + noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analyses.symbolic.fit import evaluate_fit, fit_edges
from analyses.symbolic.library import DEFAULT, by_name, custom, from_spec, resolve, to_spec
from analyses.symbolic.select import choose, pareto_front
from inspect_kit.errors import DataError, OptionError

# argument range u = a x + b over x in [-1, 1] where each primitive is clearly nonlinear
U_RANGE = {
    "x^2": (-1, 1.5), "x^3": (-1, 1.5), "x^4": (-1, 1.5), "x^5": (-1, 1.5),
    "1/x": (0.3, 1.5), "1/x^2": (0.3, 1.5), "1/x^3": (0.4, 1.5), "1/x^4": (0.4, 1.5),
    "1/x^5": (0.5, 1.5), "sqrt": (0.02, 2), "x^1.5": (0.02, 2), "1/sqrt": (0.1, 2),
    "exp": (-1, 2), "log": (0.1, 3), "abs": (-1, 1.5), "sin": (-2, 3), "tan": (-1.2, 1.3),
    "tanh": (-2.5, 2), "sgn": (-1, 1.5), "arcsin": (-0.95, 0.9), "arccos": (-0.9, 0.95),
    "arctan": (-3, 2), "arctanh": (-0.9, 0.95), "gaussian": (-2, 1.5), "sigmoid": (-4, 3),
    "softplus": (-3, 3), "erf": (-2, 1.5), "sinh": (-2.5, 2), "cosh": (-2.5, 2),
}
# affine-equivalent families: c*sigmoid(u)+d == c/2*tanh(u/2)+c/2+d; acos(u) = pi/2 - asin(u)
SAME = {"sigmoid": {"sigmoid", "tanh"}, "arccos": {"arccos", "arcsin"},
        "arcsin": {"arccos", "arcsin"}}


def _cases(rng: np.random.Generator, reps: int = 2):
    x = np.linspace(-1, 1, 160)
    rows, truth, params = [], [], []
    for name, (u0, u1) in U_RANGE.items():
        prim = by_name()[name]
        for _ in range(reps):
            j0, j1 = rng.uniform(0, 0.1 * (u1 - u0), 2)
            lo, hi = u0 + j0, u1 - j1
            sgn = rng.choice([-1.0, 1.0])
            a, b = sgn * (hi - lo) / 2, (hi + lo) / 2
            c = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
            d = rng.uniform(-1, 1)
            y = c * evaluate_fit(prim, (a, b, 1.0, 0.0), x) + d
            rows.append(y + 1e-3 * rng.standard_normal(len(x)))
            truth.append(name)
            params.append(y)
    for _ in range(reps):  # cubic fallback: a generic cubic
        p = rng.uniform(-1, 1, 4) + np.array([0, 0, 0, 1.5])
        y = sum(p[k] * x**k for k in range(4))
        rows.append(y + 1e-3 * rng.standard_normal(len(x)))
        truth.append("poly3")
        params.append(y)
    return np.tile(x, (len(rows), 1)), np.array(rows), truth, params


def test_every_primitive_recovered_at_noise_1e3():
    rng = np.random.default_rng(0)
    X, Y, truth, clean = _cases(rng)
    table = fit_edges(X, Y, progress=False)
    picks = choose(table)
    right = [p["function"] in SAME.get(t, {t}) for p, t in zip(picks, truth)]
    wrong = [(t, p["function"]) for p, t, ok in zip(picks, truth, right) if not ok]
    assert np.mean(right) >= 0.95, wrong
    # the true primitive's fit (canonical parameters) reproduces the noise-free curve
    for e, t in enumerate(truth):
        k = table.names.index(t)
        fit = evaluate_fit(table.library[k], table.params[e, k], X[e], table.poly[e])
        if t != "sgn":  # a step's location is only resolved to the point spacing
            assert np.max(np.abs(fit - clean[e])) < 1e-2 * np.std(clean[e]), t


def test_exact_parameters_without_noise():
    x = np.linspace(-1, 1, 300)
    ys = [np.sin(np.pi * x), 3 * np.sin(3 * x + 0.5) + 0.7, np.exp(2 * x - 1), 2 / (x + 1.5),
          np.sqrt(x + 1.2) * 2 - 1, (x - 0.3) ** 2]
    table = fit_edges(np.tile(x, (len(ys), 1)), np.array(ys), ["sin", "exp", "1/x", "sqrt", "x^2"],
                      progress=False)
    p = {n: table.params[:, k] for k, n in enumerate(table.names)}
    np.testing.assert_allclose(p["sin"][0], [math.pi, 0, 1, 0], atol=1e-7)
    np.testing.assert_allclose(p["sin"][1], [3, 0.5, 3, 0.7], atol=1e-7)
    np.testing.assert_allclose(p["exp"][2], [2, 0, math.exp(-1), 0], atol=1e-7)  # b folded in c
    np.testing.assert_allclose(p["1/x"][3], [1, 1.5, 2, 0], atol=1e-7)
    np.testing.assert_allclose(p["sqrt"][4], [1, 1.2, 2, -1], atol=1e-7)
    np.testing.assert_allclose(p["x^2"][5], [1, -0.3, 1, 0], atol=1e-7)
    assert table.r2[0, table.names.index("sin")] > 1 - 1e-14


def test_expansion_reaches_large_frequencies():
    x = np.linspace(-1, 1, 800)
    y = np.sin(40 * x + 1.0)  # a*std(x) ~ 23: far outside the initial box [-4, 4]
    table = fit_edges(x[None], y[None], ["sin"], n_sub=512, progress=False)
    assert table.r2[0, 0] > 1 - 1e-10
    np.testing.assert_allclose(table.params[0, 0], [40, 1.0, 1, 0], atol=1e-6)


@pytest.mark.parametrize("prim", [p for p in DEFAULT if p.symmetry not in ("poly",)],
                         ids=lambda p: p.name)
def test_canonical_form_is_the_same_function(prim):
    rng = np.random.default_rng(1)
    lo, hi = U_RANGE.get(prim.name, (-1, 1))
    x = np.linspace(-1, 1, 50)
    for sgn in (-1.0, 1.0):
        a, b = sgn * (hi - lo) / 2, (hi + lo) / 2 + (5.0 if prim.name == "sin" else 0.0)
        c, d = rng.choice([-1, 1]) * rng.uniform(0.5, 2), rng.uniform(-1, 1)
        ca = prim.canonical(a, b, c, d)
        np.testing.assert_allclose(evaluate_fit(prim, ca, x), evaluate_fit(prim, (a, b, c, d), x),
                                   rtol=1e-9, atol=1e-9)
        a2, b2, c2, _ = ca
        if prim.symmetry in ("odd", "even", "sin", "tan", "acos", "sigmoid"):
            assert a2 >= 0
        if prim.symmetry == "sin":
            assert c2 >= 0 and -math.pi < b2 <= math.pi
        if prim.symmetry == "exp":
            assert b2 == 0
        if prim.symmetry in ("power", "log"):
            assert abs(a2) == 1


def test_domain_never_violated_and_library_rules():
    # y = sqrt(x + 0.01) on [-0.01, 1]: any valid sqrt fit keeps a x + b >= 0 on every point
    x = np.linspace(-0.01, 1, 200)
    table = fit_edges(x[None], np.sqrt(x + 0.01)[None], ["sqrt", "log", "1/x"], progress=False)
    for k, prim in enumerate(table.library):
        if np.isfinite(table.r2[0, k]):
            a, b = table.params[0, k, :2]
            assert prim.range_ok(np.min(a * x + b), np.max(a * x + b)), prim.name
    names = [p.name for p in resolve(["cos", "sin", "x^0.5", "sqrt", "0", "1/x^0.5"])]
    assert names == ["sin", "sqrt", "1/sqrt"]  # aliases merged, '0' never a primitive
    assert "0" not in [p.name for p in DEFAULT] and len({p.name for p in DEFAULT}) == len(DEFAULT)
    with pytest.raises(OptionError):
        resolve(["not_a_function(("])
    with pytest.raises(DataError):
        fit_edges(np.zeros((2, 10)), np.zeros((3, 10)), progress=False)


def test_user_primitive_roundtrip_and_fit():
    prim = custom("x_exp", "x*exp(x)", 5)
    lib = from_spec(to_spec(resolve(["x", prim])))
    assert lib[1].expr == "x*exp(x)" and lib[1].complexity == 5
    x = np.linspace(-1, 1, 200)
    y = 2 * (0.5 * x + 0.2) * np.exp(0.5 * x + 0.2) - 1
    table = fit_edges(x[None], y[None], lib, progress=False)
    assert table.r2[0, 1] > 1 - 1e-12
    assert choose(table)[0]["function"] == "x_exp"


def test_selection_never_zeroes_by_complexity():
    x = np.linspace(-1, 1, 200)
    y = np.sin(3 * x) + 0.05 * np.random.default_rng(0).standard_normal(200)  # imperfect edge
    table = fit_edges(x[None], y[None], progress=False)
    kept = choose(table, attribution=np.array([0.5]), prune=0.01)[0]
    gone = choose(table, attribution=np.array([0.001]), prune=0.01, zero_value=np.array([0.3]))[0]
    assert kept["function"] != "0" and not kept["zeroed"]
    assert gone["function"] == "0" and gone["params"]["d"] == 0.3
    front = pareto_front(np.array([1, 2, 2, 3, 4]), np.array([0.5, 0.1, 0.05, 0.2, 0.01]),
                         np.ones(5, bool))
    assert front == [0, 2, 4]


def test_float64_and_tensor_inputs():
    x = torch.linspace(-1, 1, 100, dtype=torch.float32)
    table = fit_edges(x[None], torch.exp(x)[None], ["exp", "x"], progress=False)
    assert table.r2.dtype == np.float64 and table.r2[0, 0] > 1 - 1e-10
