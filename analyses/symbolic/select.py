"""Choosing one primitive per edge: Pareto front and a documented pick.

For edge ``e`` and primitive ``k`` let ``err = 1 - R^2_held_out`` (held-out points, see
:mod:`analyses.symbolic.fit`) and ``cx`` the primitive's complexity. Fits that are degenerate
limits (``FitTable.degenerate``: ``std f / rms f < 1e-2``, e.g. ``cosh(0.002 x)`` imitating
``x^2``) or that leave the primitive's domain on held-out points are not eligible.

* **Pareto front**: the eligible fits not dominated in (complexity, err): walking up in
  complexity (equal complexities: fewer free parameters first, :attr:`Primitive.n_params`), a
  fit joins when its error is strictly below every simpler member's.
* **Pick** (``rule="tolerance"``, the default): the simplest front member whose error is within a
  factor ``tol`` (default 3) of the best error, ``err <= tol * err_best + 1e-12``; ties by fewer
  free parameters (``x^2`` has three, a cosine four), then lower error, then library order
  (deterministic). At a noise (or spline-approximation) floor the right
  primitive's error sits at the floor and a wrong one's adds its bias, so a simpler primitive
  wins only when the data cannot tell it apart from a more complex one.
* ``rule="bic"``: minimum ``n log(err) + cx log(n)`` with ``n`` held-out points (Schwarz 1978).
* **Imitation** (the degenerate-limit test): a transcendental fit in its Taylor regime
  (:meth:`FitTable.imitation`: on the data the fitted ``c f(a x + b) + d`` is a quadratic in
  ``x`` to 1 %, e.g. ``c - c cos(a x)`` with ``a x`` spanning a fifth of a period or less) is
  not eligible when the library has ``x^2``: it spends four parameters, two of them large and
  cancelling, on what ``x^2`` says with three, and the 1 % it differs by is the size of a
  trained network's shape error, not evidence. (Description length: the cancelling constants
  cost ``log`` of their magnitude, which no fit gain on a network's edge pays for.)

Zeroing is NOT a selection outcome: an edge becomes the constant ``0``-function (its mean value,
which the joint refit absorbs) only when its attribution is below the pruning threshold
(:func:`choose`), never because of complexity (pykan's ``'0'`` entry of complexity 0 silently
zeroed imperfect edges; see the reference study).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspect_kit.errors import OptionError

from .fit import FitTable


def pareto_front(cx: np.ndarray, err: np.ndarray, eligible: np.ndarray,
                 n_params: np.ndarray | None = None) -> list[int]:
    """Indices (columns) on the complexity-error Pareto front, in increasing complexity (equal
    complexities ordered by fewer free parameters)."""
    npar = n_params if n_params is not None else np.zeros(len(cx))
    order = sorted((k for k in range(len(cx)) if eligible[k]),
                   key=lambda k: (cx[k], npar[k], err[k], k))
    front, best = [], np.inf
    for k in order:
        if err[k] < best:
            front.append(k)
            best = err[k]
    return front


RULES = ("tolerance", "bic")


def pick(cx: np.ndarray, err: np.ndarray, front: list[int], *, rule: str = "tolerance",
         tol: float = 3.0, n: int = 100, err_floor: float = 0.0,
         n_params: np.ndarray | None = None) -> int | None:
    """The chosen column of one edge (see the module docstring), None when nothing is eligible."""
    if not front:
        return None
    if rule == "tolerance":
        best = min(err[k] for k in front)
        ok = [k for k in front if err[k] <= max(tol * best, err_floor) + 1e-12]
        npar = n_params if n_params is not None else np.zeros(len(cx))
        return min(ok, key=lambda k: (cx[k], npar[k], err[k], k))
    if rule == "bic":
        score = {k: n * np.log(max(err[k], 1e-300) + 1e-15) + cx[k] * np.log(n) for k in front}
        return min(front, key=lambda k: (score[k], k))
    raise OptionError(f"rule must be one of {RULES}, got {rule!r}")


def choose(
    table: FitTable,
    *,
    attribution: np.ndarray | None = None,
    prune: float = 0.01,
    zero_value: np.ndarray | None = None,
    rule: str = "tolerance",
    tol: float = 3.0,
    n_val: int = 100,
    err_floor: float | np.ndarray = 0.0,
) -> list[dict[str, Any]]:
    """Per edge: the chosen primitive, its parameters and fit quality, and the Pareto front.

    ``attribution`` (E,) scores; edges below ``prune`` become ``function="0"`` with
    ``params = {a: 0, b: 0, c: 0, d: zero_value[e]}`` (the edge's mean, default 0).
    ``err_floor``: one error floor for every edge or one per edge (E,).
    """
    E, K = table.r2.shape
    cx = table.complexity
    npar = np.array([p.n_params for p in table.library], dtype=float)
    elig = ~table.degenerate() & np.isfinite(table.r2_val) & np.isfinite(table.r2)
    if "x^2" in table.names:
        elig &= ~table.imitation()
    out = []
    for e in range(E):
        err = np.clip(1.0 - table.r2_val[e], 0.0, None)
        front = pareto_front(cx, err, elig[e], npar)
        pf = [{"function": table.names[k], "complexity": float(cx[k]),
               "r2_val": float(table.r2_val[e, k])} for k in front]
        score = None if attribution is None else float(attribution[e])
        row: dict[str, Any] = {"attribution": score, "pareto": pf}
        if score is not None and score < prune:
            d0 = 0.0 if zero_value is None else float(zero_value[e])
            row.update(function="0", params={"a": 0.0, "b": 0.0, "c": 0.0, "d": d0},
                       r2=None, r2_val=None, complexity=0.0, column=None, zeroed=True)
            out.append(row)
            continue
        floor = float(np.broadcast_to(np.asarray(err_floor, dtype=float), (E,))[e])
        k = pick(cx, err, front, rule=rule, tol=tol, n=n_val, err_floor=floor, n_params=npar)
        if k is None:  # nothing eligible: the best finite fit, else the cubic fallback
            fin = np.where(np.isfinite(table.r2_val[e]), table.r2_val[e], -np.inf)
            k = int(np.argmax(fin)) if np.isfinite(fin).any() else None
        if k is None:
            raise OptionError(f"edge {e}: no primitive of the library fits (all out of domain); "
                              "add 'x' or 'poly3' to the library")
        a, b, c, d = (float(v) for v in table.params[e, k])
        row.update(function=table.names[k], params={"a": a, "b": b, "c": c, "d": d},
                   r2=float(table.r2[e, k]), r2_val=float(table.r2_val[e, k]),
                   complexity=float(cx[k]), column=int(k), zeroed=False)
        if table.library[k].symmetry == "poly":
            row["poly"] = [float(v) for v in table.poly[e]]
        out.append(row)
    return out
