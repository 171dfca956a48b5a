"""Degenerate limits in a finished formula: a function used only in its Taylor regime.

A refit can drive a transcendental node into the regime where it is its own Taylor polynomial
on the data: ``c (1 - cos(a x))`` with ``a x`` in ``[3e-4, 2e-3]`` is ``(c a^2 / 2) x^2`` to
``(a x)^2 / 12 = 3e-7`` of its size, with ``c = 2.7e8`` and ``a = 3e-4`` cancelling (the
network-fitted leaf of III.13.18's ``x2^2``). Edge selection already refuses such fits
(:meth:`analyses.symbolic.fit.FitTable.degenerate`, ``imitation``); a leaf found on the
network by the structure route, or a refit of the whole formula, can still produce one.

:func:`reduce_limits` replaces every such node ``f(u)`` (``f`` in :data:`REDUCIBLE`, or a
non-integer power ``u^p``) by its lowest-order Taylor polynomial around ``u0`` that leaves the
*whole* formula within ``tol`` of its standard deviation on the data:

.. math::

    f(u) \\approx \\sum_{j=0}^{m} \\frac{f^{(j)}(u_0)}{j!} (u - u_0)^j,\\qquad
    \\max_i |F_{\\text{new}}(x_i) - F(x_i)| \\le \\mathrm{tol}\\,\\mathrm{std}_i F(x_i),

``m = 1, 2`` in turn, ``u0 = 0`` when the argument's range ``[lo, hi]`` lies within its own
width of 0 (``|lo + hi| / 2 <= hi - lo``), else the midpoint. The caller refits the constants
and snaps them (``(c a^2 / 2) -> 4 pi``) and keeps the reduced formula only if it fits the
data as well (:func:`analyses.symbolic.routes.prefer`). This is the description-length
argument of the degenerate-limit test (the cancelling constants cost the log of their size and
buy nothing measurable) applied to the finished formula instead of one edge.

>>> import sympy, torch
>>> x = sympy.Symbol("x1")
>>> X = torch.linspace(1, 5, 50, dtype=torch.float64)[:, None]
>>> e = sympy.Float(2.7e8) * (1 - sympy.cos(sympy.Float(3e-4) * x))
>>> reduce_limits(e, [x], X)
12.15*x1**2
>>> reduce_limits(sympy.cos(x), [x], X)  # a full cosine is not a limit
cos(x1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy
import torch

from .formula import evaluate

#: functions whose degenerate limits are reduced (one argument each)
REDUCIBLE = (sympy.cos, sympy.sin, sympy.tan, sympy.exp, sympy.log, sympy.cosh, sympy.sinh,
             sympy.tanh, sympy.atan, sympy.asin, sympy.acos, sympy.atanh, sympy.asinh)
#: the largest Taylor order tried
MAX_ORDER = 2


def _argument(node: Any) -> tuple[Any, Any] | None:
    """``(f, u)`` with ``node = f(u)`` for a reducible node, else None."""
    if isinstance(node, sympy.Function) and node.func in REDUCIBLE and len(node.args) == 1:
        return node.func, node.args[0]
    if isinstance(node, sympy.Pow) and node.exp.is_number and not node.exp.is_integer \
            and not node.base.is_number:
        p = node.exp
        return (lambda t: t ** p), node.base
    return None


def _values(expr: Any, syms: Sequence[Any], X: torch.Tensor) -> np.ndarray | None:
    with np.errstate(all="ignore"):
        v = evaluate(expr, syms, X)
    v = np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, dtype=float)
    v = np.broadcast_to(v, (len(X),)) if v.ndim == 0 else v.reshape(-1)
    return v if np.isfinite(v).all() else None


def _taylor(fx: Any, t: Any, u0: float) -> list[Any] | None:
    """``f^(j)(u0) / j!`` for ``j <= MAX_ORDER`` (floats), None where one is not finite."""
    out = []
    d = fx
    for j in range(MAX_ORDER + 1):
        try:
            c = complex(d.subs(t, u0).evalf()) / math.factorial(j)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if not (math.isfinite(c.real) and abs(c.imag) <= 1e-12 * max(1.0, abs(c.real))):
            return None
        out.append(sympy.Float(c.real))
        d = sympy.diff(d, t)
    return out


def reduce_limits(expr: Any, syms: Sequence[Any], X: torch.Tensor, tol: float = 1e-4) -> Any:
    """``expr`` with every degenerate-limit node replaced by its Taylor polynomial (rule in the
    module docstring); ``expr`` itself when there is none or it is not finite on ``X``."""
    base = _values(expr, syms, X)
    if base is None or not np.std(base) > 0:
        return expr
    limit = tol * float(np.std(base))
    t = sympy.Dummy("t")
    out = expr
    for node in list(sympy.preorder_traversal(expr)):  # outermost first
        found = _argument(node)
        if found is None or not out.has(node):
            continue
        f, u = found
        uv = _values(u, syms, X)
        if uv is None:
            continue
        lo, hi = float(uv.min()), float(uv.max())
        centres = [0.0, (lo + hi) / 2] if abs(lo + hi) / 2 <= hi - lo else [(lo + hi) / 2]
        for u0 in centres:  # 0 first where it is close; the midpoint where f is singular at 0
            coef = _taylor(f(t), t, u0)
            if coef is None:
                continue
            for m in range(1, MAX_ORDER + 1):
                taylor = sum(coef[j] * (u - sympy.Float(u0)) ** j if u0 else coef[j] * u ** j
                             for j in range(m + 1))
                cand = out.xreplace({node: taylor})
                v = _values(cand, syms, X)
                if v is not None and float(np.abs(v - base).max()) <= limit:
                    out = cand
                    break
            else:
                continue
            break
    return out


__all__ = ["MAX_ORDER", "REDUCIBLE", "reduce_limits"]
