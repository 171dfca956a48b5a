"""Snapping fitted constants to simple values when the data allow it.

:func:`snap`: greedy, one constant at a time (the one nearest a simple value first), try the
simplest nearby ``p/q * K`` with
``K in {1, pi, sqrt2, e, sqrt(pi), 1/sqrt(pi), sqrt(2/pi), 1/pi, pi^2, 1/pi^2}``, ``q <= 20``,
``|p| <= 20`` (and 0 for constants below 0.1), in order of description length
(:func:`ranked_candidates`). An offset ``c`` of a sum ``c + u`` with ``|c| < 0.1 rms(u)`` on
the data (:func:`_small_offset`) is taken first and tried as 0 first: the simplest value, and
the constant a fit to an imperfect network misplaces most. The constants are first refitted to
the data (the network's values carry its bias), and candidates are looked for near those.
Keep the first snap for which the
formula-vs-data MSE after refitting the other constants to the data stays below
``MSE_data(before) + 0.2 * min(MSE(before vs network), MSE(network vs data)) + 1e-14 var(y)``
("does not hurt the fit": a snap may move the formula towards the data freely, away from it
only by a fraction of the network's own error).

>>> candidates(0.3334)[:1]
[1/3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .formula import evaluate, floats, refit

CONSTANTS = (("1", 1.0), ("pi", math.pi), ("sqrt(2)", math.sqrt(2)), ("E", math.e),
             ("sqrt(pi)", math.sqrt(math.pi)), ("1/sqrt(pi)", 1 / math.sqrt(math.pi)),
             ("sqrt(2/pi)", math.sqrt(2 / math.pi)), ("1/pi", 1 / math.pi),
             ("pi**2", math.pi**2), ("1/pi**2", 1 / math.pi**2))

def _constant(name: str) -> Any:
    import sympy

    return {"1": sympy.Integer(1), "pi": sympy.pi, "sqrt(2)": sympy.sqrt(2), "E": sympy.E,
            "sqrt(pi)": sympy.sqrt(sympy.pi), "1/sqrt(pi)": 1 / sympy.sqrt(sympy.pi),
            "sqrt(2/pi)": sympy.sqrt(2 / sympy.pi), "1/pi": 1 / sympy.pi,
            "pi**2": sympy.pi**2, "1/pi**2": 1 / sympy.pi**2}[name]


def candidates(v: float, *, max_q: int = 20, max_p: int = 20, rel: float = 1e-2,
               zero_below: float = 1e-2) -> list[Any]:
    """Simple constants near ``v``, simplest first: 0 (for |v| < ``zero_below``), then
    ``p/q * K`` within ``rel`` (the fit criterion of :func:`snap` decides which, if any, is
    kept)."""
    return [c for _, c in ranked_candidates(v, max_q=max_q, max_p=max_p, rel=rel,
                                            zero_below=zero_below)]


def ranked_candidates(v: float, *, max_q: int = 20, max_p: int = 20, rel: float = 1e-2,
                      zero_below: float = 1e-2) -> list[tuple[tuple, Any]]:
    """:func:`candidates` with their rank ``(bits, relative error)``: the description length
    ``log2(|p| + 1) + log2(q) + log2(1 + k)`` of ``p/q * K_k`` (``K`` in :data:`CONSTANTS`
    order; 0 costs nothing), so ``3/(20 pi)`` (9.3 bits) comes before ``8/(17 pi^2)`` (10.6)."""
    import sympy

    out: list[tuple[tuple, Any]] = []
    if abs(v) < zero_below:
        out.append(((0.0, 0.0), sympy.Integer(0)))
    for ki, (kname, kval) in enumerate(CONSTANTS):
        fr = Fraction(v / kval).limit_denominator(max_q)
        if fr == 0 or abs(fr.numerator) > max_p:
            continue
        approx = float(fr) * kval
        err = abs(approx - v) / max(abs(v), 1e-300)
        if err <= rel:
            val = sympy.Rational(fr.numerator, fr.denominator) * _constant(kname)
            bits = math.log2(abs(fr.numerator) + 1) + math.log2(fr.denominator) + math.log2(1 + ki)
            out.append(((round(bits, 6), err), val))
    out.sort(key=lambda t: t[0])
    return out


def _small_offset(expr: Any, f: Any, syms: Sequence[Any], X: torch.Tensor,
                  rel: float = 0.1) -> bool:
    """Whether ``f`` is a term of a sum ``f + u`` in ``expr`` with ``|f| < rel * rms(u)`` on
    ``X``: an offset that small is the first thing a fit gets wrong, and 0 its simplest value."""
    import sympy

    for a in expr.atoms(sympy.Add):
        if f in a.args:
            rest = a - f
            if rest.is_number:
                continue
            with np.errstate(all="ignore"):
                v = evaluate(rest, syms, X)
            rms = float((v**2).mean().sqrt())
            if math.isfinite(rms) and abs(float(f)) < rel * rms:
                return True
    return False


def snap(expr: Any, syms: Sequence[Any], X: torch.Tensor, y_data: torch.Tensor,
         y_net: torch.Tensor, *, max_tries: int = 3, steps: int = 60) -> Any:
    """Greedy constant snapping with refits (criterion in the module docstring)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    yd = torch.as_tensor(y_data, dtype=torch.float64).reshape(-1)
    yn = torch.as_tensor(y_net, dtype=torch.float64).reshape(-1)

    def mse(e: Any, y: torch.Tensor = yd) -> float:
        with np.errstate(all="ignore"):
            v = float(((evaluate(e, syms, X) - y) ** 2).mean())
        return v if math.isfinite(v) else math.inf

    floor = float(((yn - yd) ** 2).mean())
    tiny = 1e-14 * float(yd.var()) + 1e-300
    cur, cur_mse = expr, mse(expr)
    # candidates are looked for near the constants the *data* give: fitted to a network they
    # carry its bias (a scale 0.987 where the data say 1 would snap to pi^2/10)
    start = refit(expr, syms, X, yd, steps=steps, method="lsq")
    if (m := mse(start)) < cur_mse:
        cur, cur_mse = start, m
    done: set[float] = set()
    for _ in range(4 * len(floats(expr)) + 4):
        todo = [f for f in floats(cur) if float(f) not in done]
        if not todo:
            break
        # the constant closest to the simplest value first (1 before -11/(4 sqrt(pi))): a wrong
        # early snap would pull the others away from their true values
        small = {g for g in todo if _small_offset(cur, g, syms, X)}
        f = min(todo, key=lambda g: (0.0, 0.0) if g in small else
                (ranked_candidates(float(g))[:1] or [((99.0, 1.0),)])[0][0])
        done.add(float(f))
        limit = cur_mse + 0.2 * min(mse(cur, yn), floor) + tiny
        tries = candidates(float(f))[:max_tries]
        if f in small:  # an offset small beside its sum is first tried as a fitted zero
            tries = [0, *(t for t in tries if t != 0)]
        elif 1e-2 <= abs(float(f)) < 0.1:  # a small offset may be a fitted zero
            tries.append(0)
        for cand in tries:  # simplest first; the first the fit allows is kept
            trial = cur.xreplace({f: cand})
            m = mse(trial)
            if m > limit:  # the other constants follow the data, which judges the snap
                trial = refit(trial, syms, X, yd, steps=steps)
                m = mse(trial)
            if m <= limit:
                cur, cur_mse = trial, m
                done = {float(g) for g in floats(cur)} & done
                break
    return cur


__all__ = ["CONSTANTS", "candidates", "ranked_candidates", "snap"]
