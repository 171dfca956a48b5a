"""Bilinear splits ``f = a(x_S) + b(x_C) + p(x_S) q(x_C)`` and the squared-output transform of
the structure route, against closed forms and exact recovery."""

from __future__ import annotations

import numpy as np
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic.library import resolve
from analyses.symbolic.snap import snap
from analyses.symbolic.structure import bilinear_residual, residuals, separable_formula
from tests.test_symbolic_structure import LIBRARY, _box, _oracle, _outer


def test_bilinear_residual_is_zero_for_a_sum_plus_one_product_only():
    a = torch.linspace(-2, 2, 40, dtype=torch.float64)
    b = torch.linspace(0.5, 2, 30, dtype=torch.float64)
    F = _outer(lambda x, y: torch.sin(x) + y**2 + torch.exp(x) * torch.cos(y), a, b)
    r_add, r_mul = residuals(F)
    assert bilinear_residual(F) < 1e-12 and r_add > 0.05 and r_mul > 0.05
    # sin(x + y) = sin x cos y + cos x sin y: two products, an interaction of rank 2
    assert bilinear_residual(_outer(lambda x, y: torch.sin(x + 2 * y), a, b)) > 0.05
    # a product is the special case a = b = 0
    assert bilinear_residual(_outer(lambda x, y: (x + 3) * torch.exp(y), a, b)) < 1e-12


def _recover(truth: str, lo: list[float], hi: list[float]):
    syms, oracle = _oracle(truth, len(lo))
    X = _box(lo, hi)
    expr, info = separable_formula(oracle, X, resolve(LIBRARY), syms, tol=1e-3)
    assert expr is not None, info
    e = fm.refit(expr, syms, X, oracle(X), steps=100)
    snapped = fm.simplify_with_timeout(snap(e, syms, X, oracle(X), oracle(X)))[0]
    exact = fm.exact_match(snapped, truth, syms, np.array([lo, hi]).T)["exact"]
    return snapped, exact, info


def test_a_constant_plus_a_product_is_one_bilinear_split():
    """``1 + x1 cos x2`` has no additive or multiplicative split (the constant breaks the
    product, the product the sum) and is not g(h1 + h2) for any invertible g on this box
    (``x1 cos x2`` changes sign): a bilinear split with both sides affine gives it exactly."""
    snapped, exact, info = _recover("1 + x1*cos(x2)", [1, 1], [3, 3])
    top = info["splits"][0]
    assert top["kind"] == "bil" and top["left_side"] == top["right_side"] == "affine", top
    assert exact, snapped


def test_a_product_is_taken_before_a_bilinear_split_of_the_same_residual():
    """A product is a bilinear split too (a = b = 0); the simpler kind wins the tie, and its
    second factor ``1 + x2 cos x3`` is bilinear (III.17.37's form)."""
    snapped, exact, info = _recover("x1*(1 + x2*cos(x3))", [1, 1, 1], [5, 2, 5])
    assert [s["kind"] for s in info["splits"][:2]] == ["mul", "bil"], info["splits"]
    assert exact, snapped


def test_weighted_mean_is_bilinear_then_separable():
    """I.18.4's form ``(x1 x3 + x2 x4) / (x1 + x2)`` = ``x4 + (x3 - x4) x1 / (x1 + x2)``: a
    bilinear split of (x1, x2) against (x3, x4), whose factors are a function of x1/x2 and a
    sum."""
    snapped, exact, info = _recover("(x1*x3 + x2*x4)/(x1 + x2)", [1, 1, 1, 1], [5, 5, 5, 5])
    top = info["splits"][0]
    assert top["kind"] == "bil" and sorted([top["left"], top["right"]]) == [[0, 1], [2, 3]]
    assert exact, snapped


def test_a_bilinear_side_that_is_not_affine_is_made_additive_by_the_gauge():
    """``x1 + x2 + x1 x2 exp(x3)`` split x2 | (x1, x3): the (x1, x3) side
    ``f(x1, ref2, x3) = x1 + ref2 + ref2 x1 exp(x3)`` is the product part plus ``x1``; the
    gauge subtracts the product part so that the rest is additive."""
    snapped, exact, info = _recover("x1 + x2 + x1*x2*exp(x3)", [1, 1, 0], [3, 3, 1])
    top = info["splits"][0]
    assert top["kind"] == "bil" and "gauge" in (top["left_side"], top["right_side"]), top
    assert exact, snapped


def test_squared_output_transform_finds_a_signed_square_root():
    """``-sqrt(x1 x2 + x3)``: no split, not g(h1 + h2 + h3) with one sign (``x1 x2``), but its
    square is a sum of a product and a variable; the sign comes back."""
    snapped, exact, info = _recover("-sqrt(x1*x2 + x3)", [1, 1, 1], [3, 3, 3])
    assert info.get("output_transform") == "sq", info
    assert exact, snapped


def test_a_function_of_one_monomial_is_found_without_gradients():
    """``x1 x2 / (1 - x1 x2 / 3)`` (II.11.27's factor) is ``g(w)`` for ``w = x1 x2`` alone:
    every other exponent pair leaves far more; ``g`` is the inverse of a line."""
    from analyses.symbolic.additive import monomial_formula

    syms = fm.input_symbols(2)
    X = _box([0.05, 0.05], [1, 1])

    def oracle(Z):
        w = Z[:, 0] * Z[:, 1]
        return w / (1 - w / 3)

    expr, info = monomial_formula(oracle, X, X[0].clone(), [0, 1], resolve(LIBRARY), syms)
    assert expr is not None and info["w"] == "x1*x2", info
    assert info["scores"][0][0] < 1e-3 * info["scores"][1][0]
    snapped = fm.simplify_with_timeout(snap(expr, syms, X, oracle(X), oracle(X)))[0]
    assert fm.exact_match(snapped, "x1*x2/(1 - x1*x2/3)", syms,
                          np.array([[0.05, 1.0], [0.05, 1.0]]))["exact"], snapped


def test_a_sum_is_no_function_of_one_monomial():
    from analyses.symbolic.additive import monomial_formula

    syms = fm.input_symbols(3)
    X = _box([1, 1, 1], [3, 3, 3])
    expr, info = monomial_formula(lambda Z: Z[:, 0] + Z[:, 1] * Z[:, 2], X, X[0].clone(),
                                  [0, 1, 2], resolve(LIBRARY), syms)
    assert expr is None and info["applies"], info
    # a variable that changes sign has no logarithm: the test does not apply
    X2 = _box([-1, 1], [1, 3])
    expr, info = monomial_formula(lambda Z: Z[:, 0] * Z[:, 1], X2, X2[0].clone(), [0, 1],
                                  resolve(LIBRARY), fm.input_symbols(2))
    assert expr is None and not info["applies"]
