"""Degenerate limits in a finished formula (issue 17): a function in its Taylor regime becomes
the polynomial it imitates, checked against closed forms."""

from __future__ import annotations

import math

import sympy
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic import routes as rt
from analyses.symbolic.degenerate import reduce_limits


def _box(n: int, lo: float = 1.0, hi: float = 5.0, rows: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return lo + (hi - lo) * torch.rand(rows, n, generator=g, dtype=torch.float64)


def _ctx(expr_true, syms, X) -> rt.Context:
    y = fm.evaluate(expr_true, syms, X).reshape(-1, 1)
    sub = torch.arange(len(X))
    return rt.Context(list(syms), X, y.clone(), y.clone(), sub, 20.0, 5.0, 60, True, 0.999)


def test_a_cosine_at_a_thousandth_of_a_period_is_the_parabola_it_imitates():
    x1, x2, x3, x4 = syms = fm.input_symbols(4)
    X = _box(4)
    imit = sympy.Float(272002808.271892) * x1 * x3 * (1 - sympy.cos(sympy.Float(3.0398e-4) * x2)) / x4
    red = reduce_limits(imit, syms, X)
    assert not red.has(sympy.cos)
    ratio = sympy.simplify(red / (x1 * x2 ** 2 * x3 / x4))
    assert ratio.is_number and math.isclose(float(ratio), 272002808.271892 * 3.0398e-4 ** 2 / 2,
                                            rel_tol=1e-9)
    # on data from the truth, the reduced formula is refitted and snapped to it
    truth = 4 * sympy.pi * x1 * x2 ** 2 * x3 / x4
    notes: list[str] = []
    out = rt.without_limits(imit, _ctx(truth, syms, X), 0, notes)
    assert sympy.simplify(out - truth) == 0
    assert notes and "degenerate" in notes[0]


def test_functions_used_over_their_range_are_kept():
    x1, x2 = syms = fm.input_symbols(2)
    X = _box(2)
    for e in (sympy.cos(x1) * x2, sympy.exp(x1 / 2) + x2, sympy.sqrt(x1) * x2, sympy.log(x1 * x2)):
        assert reduce_limits(e, syms, X) == e


def test_a_slow_exponential_that_the_data_tell_apart_stays():
    """exp(x/100) on [1, 5] is a quadratic to 2e-5 of its size: the reduction may propose it,
    but the data (noise-free) fit exp exactly and the polynomial has more operations."""
    (x1,) = syms = fm.input_symbols(1)
    X = _box(1)
    truth = sympy.exp(x1 / 100)
    notes: list[str] = []
    assert rt.without_limits(truth, _ctx(truth, syms, X), 0, notes) == truth
    assert not notes


def test_a_square_root_of_one_plus_a_tiny_term_is_linear():
    x1, x2 = syms = fm.input_symbols(2)
    X = _box(2)
    imit = sympy.Float(5e5) * sympy.sqrt(1 + sympy.Float(4e-6) * x1) * x2 - sympy.Float(5e5) * x2
    red = reduce_limits(imit, syms, X)
    assert all(p.exp.is_integer for p in red.atoms(sympy.Pow))
    truth = x1 * x2
    out = rt.without_limits(imit, _ctx(truth, syms, X), 0, [])
    assert sympy.simplify(out - truth) == 0
