"""Two-variable symmetries of a network: ``f`` depends on ``x_i, x_j`` only through one
combination ``w``, which then replaces them (Udrescu & Tegmark 2020, "AI Feynman", sec. 2.4:
translational and scaling symmetry, tested like theirs on values before and after a move).

For a pair ``(i, j)`` and each kind, ``f`` depends on ``(x_i, x_j)`` only through ``w`` iff the
derivative along the curves of constant ``w`` vanishes (the definition; the test below
compares values, not derivatives):

=========  ================  =====================================================
kind        ``w``             invariance (zero for every input)
=========  ================  =====================================================
``diff``    ``x_i - x_j``     ``d_i f + d_j f``
``sum``     ``x_i + x_j``     ``d_i f - d_j f``
``ratio``   ``x_i / x_j``     ``x_i d_i f + x_j d_j f``
``prod``    ``x_i x_j``       ``x_i d_i f - x_j d_j f``
=========  ================  =====================================================

The test moves every data row along its curve of constant ``w`` to the curve's midpoint inside
the box (below) and compares values, as AI Feynman compares ``f`` before and after a shift
(gradients of a trained spline network are too rough for the derivative form: true
symmetries of benchmark KANs gave 0.05-0.36 there, false ones from 0.13): the residual is
``rms(f(moved) - f(x)) / std f``, 0 for an exact symmetry and of the order of the network's
relative error for a network that has one; ``inf`` when the rows hardly moved (rms move under
5 % of the box). ``ratio`` and ``prod`` need both variables of one sign.

:func:`reduce` builds the function of the reduced variables **without leaving the box the
network was trained on**: for a value of ``w`` it picks ``(x_i, x_j)`` in the middle of the
segment of the curve ``w = const`` that lies inside the box (for a network that has the symmetry,
every point of the curve gives the same value). Found symmetries apply in turn (``x1 x2 / x3``:
``prod`` then ``ratio``), :func:`reduce_all`.

A **scaling** of degree ``p`` (:func:`find_scalings`) is the ``ratio`` test with a factor:
``f(l x_i, l x_j) = l^p f(x_i, x_j)``, so ``f = x_j^p h(x_i / x_j)`` (I.15.1's
``x1 x2 / sqrt(1 - x2^2/x3^2)``, I.37.4's ``x1 + x2 + 2 sqrt(x1 x2) cos x3``); degree 0 is
the ratio symmetry. :func:`scale_all` takes ``x_i^p`` or ``x_j^p`` out. A variable that
changes sign (a difference ``x_2 - x_3``) scales against one that does not, as the numerator
of ``w`` (I.6.2b: ``exp(-((x2 - x3)/x1)^2/2) / (sqrt(2 pi) x1)`` is ``x1^-1 h((x2 - x3)/x1)``).

>>> import torch
>>> X = 1 + 4 * torch.rand(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> f = lambda Z: torch.cos(Z[:, 0] - Z[:, 1]) * Z[:, 2]
>>> best = find(f, X)[0]
>>> best.kind, best.i, best.j, best.residual < 1e-9
('diff', 0, 1, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

Net = Callable[[torch.Tensor], torch.Tensor]
KINDS = ("diff", "sum", "ratio", "prod")


@dataclasses.dataclass(frozen=True)
class Symmetry:
    """``f`` depends on ``x_i, x_j`` through ``w`` of ``kind`` (module docstring)."""

    i: int
    j: int
    kind: str
    residual: float

    def combine(self, xi: Any, xj: Any) -> Any:
        """``w`` from ``x_i, x_j`` (tensors or sympy expressions)."""
        return {"diff": xi - xj, "sum": xi + xj, "ratio": xi / xj, "prod": xi * xj}[self.kind]


def _one_sign(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


def _probe(fn: Net, X: torch.Tensor, rows: int,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``rows`` evenly spaced data rows, the box of ``X`` and ``fn`` on the rows."""
    X = X.double()
    Z = X[torch.linspace(0, len(X) - 1, min(rows, len(X))).round().long().unique()]
    with torch.no_grad():
        F = fn(Z).double().reshape(-1)
    return Z, X.min(0).values, X.max(0).values, F


def find(fn: Net, X: torch.Tensor, *, rows: int = 512) -> list[Symmetry]:
    """Every pair and kind with its residual, smallest first (module docstring), on up to
    ``rows`` evenly spaced data rows."""
    n = X.shape[1]
    if n < 2:
        return []
    Z, lo, hi, F = _probe(fn, X, rows)
    scale = float(F.std())
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            for kind in KINDS:
                if kind in ("ratio", "prod") and not (
                        _one_sign(float(lo[i]), float(hi[i])) and _one_sign(float(lo[j]), float(hi[j]))):
                    continue
                s = Symmetry(i, j, kind, math.inf)
                xi, xj = _inside(s, s.combine(Z[:, i], Z[:, j]), lo, hi)
                moved = float(torch.sqrt(((xi - Z[:, i]) ** 2 / (hi[i] - lo[i]) ** 2
                                          + (xj - Z[:, j]) ** 2 / (hi[j] - lo[j]) ** 2).mean()))
                Zm = Z.clone()
                Zm[:, i], Zm[:, j] = xi, xj
                with torch.no_grad():
                    Fm = fn(Zm).double().reshape(-1)
                res = float(torch.sqrt(((Fm - F) ** 2).mean())) / scale if scale > 0 else math.inf
                ok = math.isfinite(res) and moved > 0.05  # the test moved the points
                out.append(dataclasses.replace(s, residual=res if ok else math.inf))
    return sorted(out, key=lambda s: (s.residual, s.i, s.j, KINDS.index(s.kind)))


def _inside(s: Symmetry, w: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_i, x_j)`` on the curve ``w = const``, in the middle of its part inside the box."""
    li, hi_i, lj, hj = lo[s.i], hi[s.i], lo[s.j], hi[s.j]
    if s.kind in ("diff", "sum"):
        sign = 1.0 if s.kind == "diff" else -1.0  # x_j = sign (x_i - w)
        a = torch.maximum(li.expand_as(w), lj + w if s.kind == "diff" else w - hj)
        b = torch.minimum(hi_i.expand_as(w), hj + w if s.kind == "diff" else w - lj)
        xi = torch.where(a <= b, (a + b) / 2, torch.clamp(w, li, hi_i))
        return xi, sign * (xi - w)
    if s.kind == "ratio" and not _one_sign(float(li), float(hi_i)):
        # x_i changes sign, x_j does not: |x_j| = t in [aj, bj], x_i = (w sj) t in [li, hi_i]
        sj = 1.0 if float(lj) > 0 else -1.0
        aj, bj = sorted((abs(float(lj)), abs(float(hj))))
        v = w * sj
        with torch.no_grad():
            bound = torch.where(v > 0, float(hi_i) / v, torch.where(v < 0, float(li) / v,
                                                                     torch.full_like(v, bj)))
        a = torch.full_like(v, aj)
        b = torch.minimum(torch.full_like(v, bj), bound)
        t = torch.where(a <= b, torch.sqrt(a * b), torch.full_like(v, aj))
        return w * sj * t, sj * t
    # ratio: x_i = w x_j; prod: x_i = w / x_j. Work on |x| in log space (one sign each).
    si = 1.0 if float(li) > 0 else -1.0
    sj = 1.0 if float(lj) > 0 else -1.0
    ai, bi = sorted((abs(float(li)), abs(float(hi_i))))
    aj, bj = sorted((abs(float(lj)), abs(float(hj))))
    aw = w.abs()
    if s.kind == "ratio":  # |x_j| in [aj, bj] and |x_i| = aw |x_j| in [ai, bi]
        a = torch.full_like(aw, aj).maximum(ai / aw)
        b = torch.full_like(aw, bj).minimum(bi / aw)
    else:  # |x_i| = aw / |x_j| in [ai, bi]
        a = torch.full_like(aw, aj).maximum(aw / bi)
        b = torch.full_like(aw, bj).minimum(aw / ai)
    xj = torch.where(a <= b, torch.sqrt(a * b), torch.clamp(torch.sqrt(a * b), aj, bj))
    xi = aw * xj if s.kind == "ratio" else aw / xj
    return si * xi, sj * xj


def reduce(fn: Net, X: torch.Tensor, s: Symmetry) -> tuple[Net, torch.Tensor, list[int]]:
    """The function of the reduced inputs (``w`` in column ``i``, column ``j`` removed), the
    reduced data, and for each reduced column the original column it came from (``i`` for
    ``w``)."""
    X = X.double()
    n = X.shape[1]
    keep = [c for c in range(n) if c != s.j]
    lo, hi = X.min(0).values, X.max(0).values
    Xr = X[:, keep].clone()
    Xr[:, keep.index(s.i)] = s.combine(X[:, s.i], X[:, s.j])
    col_w = keep.index(s.i)

    def fr(Zr: torch.Tensor) -> torch.Tensor:
        Zr = Zr.double()
        xi, xj = _inside(s, Zr[:, col_w], lo, hi)
        cols = []
        for c in range(n):
            cols.append(xi if c == s.i else xj if c == s.j else Zr[:, keep.index(c)])
        return fn(torch.stack(cols, 1))

    return fr, Xr, keep


def reduce_all(fn: Net, X: torch.Tensor, syms: Sequence[Any], *, tol: float = 0.02,
               ) -> tuple[Net, torch.Tensor, list[Any], list[Symmetry]]:
    """Apply the best symmetry below ``tol`` until none is left (or one variable). Returns the
    reduced function and data, one sympy expression per reduced column in the original
    symbols (``x3 - x4`` for a ``diff``), and the symmetries applied."""
    exprs = list(syms)
    applied: list[Symmetry] = []
    while X.shape[1] > 1:
        cands = [s for s in find(fn, X) if s.residual <= tol]
        if not cands:
            break
        s = cands[0]
        fn, X, keep = reduce(fn, X, s)
        w = s.combine(exprs[s.i], exprs[s.j])
        exprs = [w if c == s.i else exprs[c] for c in keep]
        applied.append(s)
    return fn, X, exprs, applied


@dataclasses.dataclass(frozen=True)
class Scaling:
    """``f(l x_i, l x_j) = l^power f(x_i, x_j)`` for every ``l``: ``f`` is ``x_d^power`` times
    a function of ``w = x_i / x_j`` (and the other inputs), ``d`` = ``divide`` (``i`` or
    ``j``; :func:`scale_out`)."""

    i: int
    j: int
    power: float
    residual: float
    divide: int = -1


#: scaling degrees are snapped to this grid (half-integers) and kept up to this magnitude
POWER_STEP, MAX_POWER = 0.5, 4.0


def find_scalings(fn: Net, X: torch.Tensor, *, rows: int = 512) -> list[Scaling]:
    """Every pair with both inputs of one sign (or one of them, then the numerator of the
    ratio) whose network is homogeneous of a nonzero
    degree ``p`` (a multiple of :data:`POWER_STEP`, ``|p| <= MAX_POWER``) in the pair: AI
    Feynman's scaling test extended to a degree (Udrescu & Tegmark 2020, sec. 2.4; degree 0 is
    the ``ratio`` symmetry). Each row moves along its ray ``x -> l x`` in the ``(x_i, x_j)``
    plane to the middle of the ray's part inside the box (as ``ratio`` moves it); ``p`` is the
    least-squares slope of ``log(f(moved) / f)`` on ``log l``, snapped; the residual is
    ``rms(f(moved) - l^p f) / std f``. Needs ``f`` of one sign on the rows. Smallest residual
    first.

    >>> X = 1 + 4 * torch.rand(300, 3, dtype=torch.float64,
    ...                         generator=torch.Generator().manual_seed(0))
    >>> f = lambda Z: Z[:, 1] ** 2 * torch.exp(Z[:, 0] / Z[:, 1]) + Z[:, 2]  # x3 breaks (0, 2)
    >>> [(s.i, s.j, s.power) for s in find_scalings(f, X) if s.residual < 1e-9]
    []
    >>> g = lambda Z: Z[:, 1] ** 2 * torch.exp(Z[:, 0] / Z[:, 1]) * (1 + Z[:, 2])
    >>> [(s.i, s.j, s.power) for s in find_scalings(g, X) if s.residual < 1e-9]
    [(0, 1, 2.0)]
    """
    n = X.shape[1]
    Z, lo, hi, F = _probe(fn, X, rows)
    scale = float(F.std())
    if n < 2 or not (scale > 0 and (bool((F > 0).all()) or bool((F < 0).all()))):
        return []
    out = []
    signed = [_one_sign(float(lo[c]), float(hi[c])) for c in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if signed[i] and signed[j]]
    # a variable that changes sign (a difference x_i - x_j, I.6.2b's) scales against one that
    # does not, as the numerator of w
    pairs += [(i, j) if not signed[i] else (j, i) for i in range(n) for j in range(i + 1, n)
              if signed[i] != signed[j]]
    for i, j in pairs:
        xi, xj = _inside(Symmetry(i, j, "ratio", math.inf), Z[:, i] / Z[:, j], lo, hi)
        lam = xj / Z[:, j]
        Zm = Z.clone()
        Zm[:, i], Zm[:, j] = xi, xj
        with torch.no_grad():
            Fm = fn(Zm).double().reshape(-1)
        ll, lf = torch.log(lam), torch.log(Fm / F)
        if not (bool(torch.isfinite(lf).all()) and float(ll.abs().mean()) > 0.05):
            continue
        p = float((ll * lf).sum() / (ll * ll).sum())
        p = POWER_STEP * round(p / POWER_STEP)
        if p == 0 or abs(p) > MAX_POWER:
            continue
        res = float(torch.sqrt(((Fm - lam**p * F) ** 2).mean())) / scale
        if math.isfinite(res):
            out.append(Scaling(i, j, p, res))
    return sorted(out, key=lambda s: (s.residual, s.i, s.j))


def scale_out(fn: Net, X: torch.Tensor, s: Scaling) -> tuple[Net, torch.Tensor, list[int]]:
    """``f / x_d^p`` as a function of the inputs with ``w = x_i / x_j`` in column ``i`` and
    column ``j`` removed (``d = s.divide``), evaluated where :func:`reduce` evaluates a
    ``ratio`` (inside the box); the reduced data; the original column of each reduced one."""
    r = Symmetry(s.i, s.j, "ratio", s.residual)
    fr, Xr, keep = reduce(fn, X, r)
    lo, hi = X.double().min(0).values, X.double().max(0).values
    col_w = keep.index(s.i)

    def fs(Zr: torch.Tensor) -> torch.Tensor:
        xi, xj = _inside(r, Zr.double()[:, col_w], lo, hi)
        return fr(Zr) / (xi if s.divide == s.i else xj) ** s.power

    return fs, Xr, keep


def scale_all(fn: Net, X: torch.Tensor, exprs: Sequence[Any], library: Sequence[Any], *,
              tol: float = 0.02, points: int = 200,
              ) -> list[tuple[Net, torch.Tensor, list[Any], Any, Scaling]]:
    """The best scaling below ``tol`` (:func:`find_scalings`) taken out, then the symmetries
    it opens (:func:`reduce_all`), both ways: a list of ``(function, data, column expressions,
    factor, scaling)`` with ``f = factor * function`` (``factor = x_d^p`` in the expressions
    of ``exprs``); empty when no scaling holds. ``x_j^p h(w) = x_i^p w^-p h(w)``: which of
    the two leaves the simpler function of ``w`` is a property of the formula (``x1 x2 /
    sqrt(1 - x2^2/x3^2)`` wants ``x2`` out, ``x1 x3^2 / sqrt(1 - x2^2/x3^2)`` wants
    ``x3^2``), so both are returned, first the one whose profile along ``w`` (the other
    inputs at their medians) the library fits with the lower complexity, then the higher R^2
    (:func:`analyses.symbolic.univariate.fit_univariate`)."""
    import sympy

    from .univariate import fit_univariate

    found = [s for s in find_scalings(fn, X) if s.residual <= tol]
    if not found:
        return []
    s0 = found[0]
    out = []
    for d in (s0.j, s0.i):
        s = dataclasses.replace(s0, divide=d)
        fs, Xr, keep = scale_out(fn, X, s)
        col = keep.index(s.i)
        Zr = Xr.median(0).values.repeat(points, 1)
        Zr[:, col] = torch.linspace(float(Xr[:, col].min()), float(Xr[:, col].max()), points,
                                    dtype=torch.float64)
        with torch.no_grad():
            y = fs(Zr).double().reshape(-1)
        if not bool(torch.isfinite(y).all()):
            continue
        _, info = fit_univariate(Zr[:, col], y, library, sympy.Symbol("w"))
        factor = exprs[s.divide] ** sympy.nsimplify(s.power)
        cols = [exprs[s.i] / exprs[s.j] if c == s.i else exprs[c] for c in keep]
        fn2, X2, cols2, _ = reduce_all(fs, Xr, cols, tol=tol)
        out.append(((float(info["complexity"]), -float(info["r2"])),
                    (fn2, X2, cols2, factor, s)))
    return [run for _, run in sorted(out, key=lambda o: o[0])]


__all__ = ["KINDS", "Scaling", "Symmetry", "find", "find_scalings", "reduce", "reduce_all",
           "scale_all", "scale_out"]
