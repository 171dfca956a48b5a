"""Snapping fitted constants to simple values when the data allow it.

:func:`snap`: greedy, one constant at a time (the one nearest a simple value first). The
candidates (:func:`ranked_candidates`) are the ``p/q * K`` within 1 % with
``K in {1, pi, sqrt2, e, sqrt(pi), 1/sqrt(pi), sqrt(2/pi), 1/pi, pi^2, 1/pi^2}``, ``q <= 20``,
``|p| <= 100``, the decimals of 1-3 significant digits (for ``1e-3 <= |v| < 1e4``), and 0 for
constants below 0.1, each with
its description length in bits. An offset ``c`` of a sum ``c + u`` with ``|c| < 0.1 rms(u)`` on
the data (:func:`_small_offset`) is also tried as 0: the constant a fit to an imperfect network
misplaces most. The constants are first refitted to the data (the network's values carry its
bias), and candidates are looked for near those.

A snap is *allowed* when the formula-vs-data MSE after refitting the other constants to the
data (done unless the candidate alone leaves the MSE within ``4/n`` of the current one) stays
below
``MSE_data(before) + 0.2 * min(MSE(before vs network), MSE(network vs data)) + 1e-14 var(y)``
("does not hurt the fit": a snap may move the formula towards the data freely, away from it
only by a fraction of the network's own error). Of the allowed ones among the six shortest and
the two closest candidates, the one with the shortest two-part code (Rissanen 1978; Grunwald,
*The Minimum Description Length Principle*, 2007)

    L = bits(constant) + n/2 * log2(MSE_data + 1e-10 var(y))

is kept (``1e-10 var(y)``, :data:`RESOLUTION`: below it MSE differences are the refit's
convergence, and a tiny offset such as ``157/10^9`` would buy its 37 bits there). An imperfect
network allows several near values (``3/sqrt(pi)``, 4.6 bits, is 0.4 % from 1.7): on noise-free
data the true ``17/10`` (7.5 bits) has an MSE orders of magnitude lower and wins; when nothing
in the data tells them apart, the shortest wins.

>>> candidates(0.3334)[:1]
[1/3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .formula import evaluate, floats, refit

CONSTANTS = (("1", 1.0), ("pi", math.pi), ("sqrt(2)", math.sqrt(2)), ("E", math.e),
             ("sqrt(pi)", math.sqrt(math.pi)), ("1/sqrt(pi)", 1 / math.sqrt(math.pi)),
             ("sqrt(2/pi)", math.sqrt(2 / math.pi)), ("1/pi", 1 / math.pi),
             ("pi**2", math.pi**2), ("1/pi**2", 1 / math.pi**2))

#: decimals are candidates for ``|v|`` in this range only: below it a 3-digit decimal is the fitted
#: value itself (``177/10^8`` for an offset 1.77e-6 whose true value is 0), and 0 must be refitted
#: to compete with it
DECIMALS = (1e-3, 1e4)
#: MSE differences below this fraction of var(y) do not count in the two-part code (a relative
#: RMS error of 1e-5: far above float64 rounding and a refit's convergence, far below 1e-3 noise)
RESOLUTION = 1e-10


def _constant(name: str) -> Any:
    import sympy

    return {"1": sympy.Integer(1), "pi": sympy.pi, "sqrt(2)": sympy.sqrt(2), "E": sympy.E,
            "sqrt(pi)": sympy.sqrt(sympy.pi), "1/sqrt(pi)": 1 / sympy.sqrt(sympy.pi),
            "sqrt(2/pi)": sympy.sqrt(2 / sympy.pi), "1/pi": 1 / sympy.pi,
            "pi**2": sympy.pi**2, "1/pi**2": 1 / sympy.pi**2}[name]


def candidates(v: float, *, max_q: int = 20, max_p: int = 100, rel: float = 1e-2,
               zero_below: float = 1e-2) -> list[Any]:
    """Simple constants near ``v``, simplest first: 0 (for |v| < ``zero_below``), then
    ``p/q * K`` and decimals within ``rel`` (:func:`ranked_candidates` without the ranks, same
    defaults; the criterion of :func:`snap` decides which, if any, is kept)."""
    return [c for _, c in ranked_candidates(v, max_q=max_q, max_p=max_p, rel=rel,
                                            zero_below=zero_below)]


def ranked_candidates(v: float, *, max_q: int = 20, max_p: int = 100, rel: float = 1e-2,
                      zero_below: float = 1e-2) -> list[tuple[tuple, Any]]:
    """:func:`candidates` with their rank ``(bits, relative error)``: the description length
    ``log2(|p| + 1) + log2(q) + log2(1 + k)`` of ``p/q * K_k`` (``K`` in :data:`CONSTANTS`
    order; 0 costs nothing), so ``3/(20 pi)`` (9.3 bits) comes before ``8/(17 pi^2)`` (10.6).
    Every reduced ``p/q`` with ``q <= max_q`` inside the window is listed, not only the closest
    (``17/10`` is a candidate for 1.705 although ``29/17`` is closer); integers up to
    ``max_p`` (30, 100) are constants of their own, and so are the decimals of 1-3 significant
    digits near ``v`` for ``|v|`` in :data:`DECIMALS`, at the cost of their reduced fraction
    (0.075 = 3/40: 7.3 bits).

    >>> [str(c) for _, c in ranked_candidates(1.7)][:5]
    ['3/sqrt(pi)', '12/7', '6*sqrt(2)/5', '6*pi/11', '17/10']
    >>> [str(c) for _, c in ranked_candidates(0.075)][:2]
    ['sqrt(2)/19', '3/40']
    """
    import sympy

    out: list[tuple[tuple, Any]] = []
    if abs(v) < zero_below:
        out.append(((0.0, 0.0), sympy.Integer(0)))
    for ki, (kname, kval) in enumerate(CONSTANTS):
        for q in range(1, max_q + 1):
            p = round(v / kval * q)
            if p == 0 or abs(p) > max_p or math.gcd(p, q) != 1:
                continue
            err = abs(p / q * kval - v) / max(abs(v), 1e-300)
            if err <= rel:
                val = sympy.Rational(p, q) * _constant(kname)
                bits = math.log2(abs(p) + 1) + math.log2(q) + math.log2(1 + ki)
                out.append(((round(bits, 6), err), val))
    seen = {float(c) for _, c in out}
    if DECIMALS[0] <= abs(v) < DECIMALS[1]:  # decimals of 1-3 significant digits (0.075, 3.39)
        for digits in (1, 2, 3):
            k = digits - 1 - math.floor(math.log10(abs(v)))
            r = sympy.Rational(round(v * 10**k), 10**k) if k >= 0 else \
                sympy.Integer(round(v / 10**-k) * 10**-k)
            err = abs(float(r) - v) / abs(v)
            if r != 0 and err <= rel and float(r) not in seen:
                seen.add(float(r))
                bits = math.log2(abs(r.p) + 1) + math.log2(r.q)
                out.append(((round(bits, 6), err), r))
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
         y_net: torch.Tensor, *, max_tries: int = 6, steps: int = 60) -> Any:
    """Greedy constant snapping with refits (criterion in the module docstring)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    yd = torch.as_tensor(y_data, dtype=torch.float64).reshape(-1)
    yn = torch.as_tensor(y_net, dtype=torch.float64).reshape(-1)

    def mse(e: Any, y: torch.Tensor = yd) -> float:
        with np.errstate(all="ignore"):
            v = float(((evaluate(e, syms, X) - y) ** 2).mean())
        return v if math.isfinite(v) else math.inf

    floor = float(((yn - yd) ** 2).mean())
    n = len(yd)
    tiny = 1e-14 * float(yd.var()) + 1e-300
    # the data term resolves MSE differences above RESOLUTION var(y) only: below, they are the
    # refit's convergence, not the data (a tiny offset 1.57e-7 "fits better" than 0 there)
    resolution = RESOLUTION * float(yd.var()) + 1e-300
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
        ranked = ranked_candidates(float(f))
        closest = sorted(ranked, key=lambda t: t[0][1])[:2]  # what the data say, if simple
        tries = ranked[:max_tries] + [t for t in closest if t not in ranked[:max_tries]]
        if (f in small or 1e-2 <= abs(float(f)) < 0.1) and all(c != 0 for _, c in tries):
            tries.append(((0.0, 0.0), 0))  # a small offset may be a fitted zero
        best: tuple[float, Any, float] | None = None
        for (bits, _), cand in tries:
            trial = cur.xreplace({f: cand})
            m = mse(trial)
            if m > cur_mse * (1.0 + 4.0 / n) + resolution:
                # the other constants follow the data, which judges the snap: a candidate is
                # scored at its best, not where the others were fitted without it (an offset
                # 0 against 27/20000 would lose by the exponent that compensated the offset)
                moved = refit(trial, syms, X, yd, steps=steps)
                if (m2 := mse(moved)) < m:
                    trial, m = moved, m2
            if m <= limit:  # allowed; the shortest two-part code of the allowed ones is kept
                score = bits + 0.5 * n * math.log2(m + resolution)
                if best is None or score < best[0]:
                    best = (score, trial, m)
        if best is not None:
            cur, cur_mse = best[1], best[2]
            done = {float(g) for g in floats(cur)} & done
    return cur


__all__ = ["CONSTANTS", "candidates", "ranked_candidates", "snap"]
