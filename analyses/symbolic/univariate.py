"""Best library expression of a sampled one-variable function, also through output transforms.

For each row ``(x, y)`` and each transform ``T`` of AI Feynman's (Udrescu & Tegmark 2020,
"AI Feynman: a physics-inspired method for symbolic regression", Sci. Adv.) that applies
(``id``; ``log|y|`` and ``1/y`` when ``y`` keeps one sign away from 0), ``T(y)`` is fitted by
the primitive library as a function of ``x`` and of ``x^2`` (so ``sin(x^2)`` is one fit; the
squared input adds 2 to the complexity, ``x^2``'s own)
(:func:`analyses.symbolic.fit.fit_edges` on the even points,
:func:`analyses.symbolic.select.choose` on the odd ones), mapped back (``sign * exp``, ``1/.``)
and scored by its mean squared error against ``y``. The simplest whose MSE is at most
``max(2 MSE_best, noise_mse)`` (+1e-10 var y) wins. ``noise_mse``: the error the samples carry
(the network's MSE on the data); differences below it cannot justify a more complex primitive,
and a transform adds its outer operation's complexity (:data:`TRANSFORM_COST`);
here or inside ``choose`` (its ``err_floor``, propagated through the transform's derivative).
A transformed fit good in ``T(y)`` (R^2 >= :data:`REFINE_R2`) on a row whose ``|y|`` spans a
factor :data:`REFINE_RANGE` or more is refined by least squares on ``y`` itself before it is
scored (:func:`_refine`): a fit of ``1/y`` weighs all samples alike, while near a pole of ``y``
its errors are amplified by ``y^2``.

All rows of one transform are fitted in one batched pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .fit import evaluate_fit, fit_edges
from .formula import edge_expr
from .library import Primitive
from .select import choose

TRANSFORMS = ("id", "log", "inv")
#: what a transform adds to a fit's complexity: the outer operation it puts back (``exp`` for
#: ``log``, ``1/u`` for ``inv``, each at its library complexity), as the squared input adds
#: ``x^2``'s. Free transforms let ``exp(c (x + b)^4)`` (log transform of ``x^4``, 3) undercut
#: the Lorentz factor ``1/sqrt(1 - x^2)`` (``1/sqrt`` of ``x^2``, 4) on a network's samples.
TRANSFORM_COST = {"id": 0.0, "log": 2.0, "inv": 2.0}
#: runners-up also list every primitive of at most this complexity (x, x^2, 1/x, sqrt, exp,
#: log, sin, ...) whose fit leaves at most :data:`LOOSE_SHAPE` of the samples' variance
SIMPLE_COMPLEXITY, LOOSE_SHAPE = 2.0, 1e-2


def _transform(name: str, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(T(y), T'(y))`` or None when ``T`` does not apply to the row ``y``."""
    if name == "id":
        return y, torch.ones_like(y)
    amin, amax = float(y.abs().min()), float(y.abs().max())
    if not (bool((y > 0).all() or (y < 0).all()) and amin > 1e-6 * amax):
        return None
    if name == "log":
        return torch.log(y.abs()), 1.0 / y.abs()
    return 1.0 / y, 1.0 / y**2


#: transformed fits at least this good in ``T(y)`` are refined in ``y`` (:func:`_refine`)
REFINE_R2 = 0.999
#: ... when ``max |y| / min |y|`` is at least this (below, T distorts the errors little)
REFINE_RANGE = 10.0


def _refine(prim: Primitive, params: np.ndarray, x: np.ndarray, y: np.ndarray,
            name: str) -> np.ndarray:
    """The parameters of a transformed fit ``T^{-1}(c f(a x + b) + d)`` refined by least squares
    on ``y`` itself (Levenberg-Marquardt from the fit in ``T(y)``). A fit of ``1/y`` weighs every
    sample alike, and near a pole of ``y`` a small error in ``1/y`` is a large one in ``y``:
    ``1/(exp(w/(2 pi)) - 1)`` sampled with a 1e-4 relative error is 4 % off at ``w = 0.04``
    after the fit of ``exp(w/(2 pi)) - 1``, and its offset ``d = -0.99955`` refines to -1.
    Kept only when it lowers the error in ``y``."""
    from scipy.optimize import least_squares

    fn = prim.torch_fn()
    sign = 1.0 if float(y[0]) > 0 else -1.0
    xt = torch.as_tensor(x, dtype=torch.float64)

    def pred(th: np.ndarray) -> np.ndarray:
        a, b, c, d = (float(v) for v in th)
        with np.errstate(all="ignore"):
            t = (c * fn(a * xt + b) + d).numpy()
            return sign * np.exp(t) if name == "log" else 1.0 / t

    def res(th: np.ndarray) -> np.ndarray:
        r = pred(th) - y
        return np.where(np.isfinite(r), r, 1e6 * (np.abs(y).max() + 1.0))

    start = np.asarray(params, dtype=float)
    r0 = res(start)
    if not np.isfinite(r0).all():
        return params
    try:
        out = least_squares(res, start, method="lm", max_nfev=200)
    except (ValueError, FloatingPointError):
        return params
    if np.isfinite(out.x).all() and float((res(out.x) ** 2).sum()) < float((r0**2).sum()):
        return out.x.astype(np.asarray(params).dtype)
    return params


def fit_univariate_batch(xs: torch.Tensor, ys: torch.Tensor, library: Sequence[Primitive],
                         var: Any, *, transforms: bool = True, noise_mse: float = 0.0,
                         alternatives: int = 0) -> list[tuple[Any, dict[str, Any]]]:
    """:func:`fit_univariate` for every row of ``xs``, ``ys`` ``(E, P)`` (one fit per transform).

    ``alternatives``: also return, under the info key ``"_alternatives"`` (a list of ``(sympy
    expression, R^2)``, to be popped before the info is serialised), up to that many runners-up: the
    other fits whose MSE is at most 10x the best, the most accurate and the simplest
    (complexity with :data:`TRANSFORM_COST`) in turn; then every untransformed fit of a
    primitive of complexity at most :data:`SIMPLE_COMPLEXITY` with ``1 - R^2 <= LOOSE_SHAPE``.
    The samples cannot tell the first kind apart from the chosen one, and a network's systematic
    error can hide the second; data the caller holds may tell them apart."""

    xs, ys = xs.double(), ys.double()
    E, P = xs.shape
    fit_idx, val_idx = torch.arange(0, P, 2), torch.arange(1, P, 2)
    results: list[list[tuple]] = [[] for _ in range(E)]
    extra: list[list[tuple]] = [[] for _ in range(E)]  # every primitive's fit, for runners-up
    for square, name in [(sq, t) for sq in (False, True) for t in
                         (TRANSFORMS if transforms else ("id",))]:
        rows, ts, floors = [], [], []
        for e in range(E):
            tr = _transform(name, ys[e])
            if tr is None:
                continue
            t, dt = tr
            if not bool(torch.isfinite(t).all()):
                continue
            var_t = float(t.var())
            rows.append(e)
            ts.append(t)
            floors.append(noise_mse * float((dt**2).mean()) / var_t if var_t > 0 else 0.0)
        if not rows:
            continue
        T = torch.stack(ts)
        X = xs[rows] ** 2 if square else xs[rows]
        table = fit_edges(X[:, fit_idx], T[:, fit_idx], library, x_val=X[:, val_idx],
                          y_val=T[:, val_idx], progress=False)
        if name != "id":  # the transformed fit minimised error in T(y), not in y; it
            for r, e in enumerate(rows):  # matters where |y| spans orders of magnitude
                ay = ys[e].abs()
                if float(ay.max()) < REFINE_RANGE * float(ay.min()):
                    continue
                xe = (xs[e] ** 2 if square else xs[e])[fit_idx].numpy()
                for k, prim in enumerate(table.library):
                    if (prim.symmetry != "poly" and np.isfinite(table.r2[r, k])
                            and table.r2[r, k] >= REFINE_R2):
                        table.params[r, k] = _refine(prim, table.params[r, k], xe,
                                                     ys[e, fit_idx].numpy(), name)
        chosen = choose(table, err_floor=np.array(floors))
        if alternatives > 0:  # every primitive's fit, scored numerically (sympy only later)
            for r, e in enumerate(rows):
                sign = 1.0 if float(ys[e, 0]) > 0 else -1.0
                xe = (xs[e] ** 2 if square else xs[e]).numpy()
                for k, prim in enumerate(table.library):
                    if prim.symmetry == "poly" or not np.isfinite(table.r2[r, k]):
                        continue
                    with np.errstate(all="ignore"):
                        t = evaluate_fit(prim, table.params[r, k], xe)
                        pred = {"id": t, "log": sign * np.exp(t), "inv": 1.0 / t}[name]
                        mse = float(((pred - ys[e].numpy()) ** 2).mean())
                    if math.isfinite(mse):
                        params = dict(zip("abcd", (float(v) for v in table.params[r, k])))
                        cx = (float(prim.complexity) + (2.0 if square else 0.0)
                              + TRANSFORM_COST[name])
                        extra[e].append((name, (prim, params, square), mse, cx))
        for r, e in enumerate(rows):
            row = chosen[r]
            prim = next(p for p in library if p.name == row["function"])
            expr = _expr(name, prim, row["params"], square, var, float(ys[e, 0]), row.get("poly"))
            mse = _mse(expr, var, xs[e], ys[e])
            results[e].append((name, expr, mse,
                               float(row["complexity"]) + (2.0 if square else 0.0)
                               + TRANSFORM_COST[name],
                               row["function"] + ("(x^2)" if square else "")))
    for e in range(E):
        for expr, mse, cx, label in _two_terms(xs[e], ys[e], library, var):
            results[e].append(("id", expr, mse, cx, label))
    out = []
    for e in range(E):
        var_y = float(ys[e].var())
        best = min(r[2] for r in results[e])
        ok = [r for r in results[e] if r[2] <= max(2.0 * best, noise_mse) + 1e-10 * var_y]
        name, expr, mse, cx, fn_name = min(ok, key=lambda r: (r[3], TRANSFORMS.index(r[0])))
        r2 = 1.0 - mse / var_y if var_y > 0 else 1.0
        info = {"transform": name, "function": fn_name, "r2": r2, "complexity": cx}
        if alternatives > 0:
            band = max(10.0 * best, noise_mse) + 1e-10 * var_y
            runners, seen = [], {expr}
            cands = [r for r in results[e] + extra[e] if r[2] <= band]
            by_mse = sorted(cands, key=lambda r: r[2])
            by_cx = sorted(cands, key=lambda r: (r[3], r[2]))
            # the most accurate and the simplest in turn: on a network's samples dozens of
            # flexible forms tie, and accuracy alone would crowd out a simple true form
            for r in (r for pair in zip(by_mse, by_cx) for r in pair):
                if len(runners) >= alternatives:
                    break
                alt = (_expr(r[0], *r[1], var, float(ys[e, 0])) if isinstance(r[1], tuple)
                       else r[1])
                if alt not in seen:
                    seen.add(alt)
                    runners.append((alt, 1.0 - r[2] / var_y if var_y > 0 else 1.0))
            # the simplest primitives as they are (no transform), whatever their rank, while the
            # shape is roughly right: a network's error along one line can be systematic and
            # larger than the gap between the true leaf (x^2) and a flexible imitation
            loose = LOOSE_SHAPE * var_y
            for r in sorted(extra[e], key=lambda r: r[2]):
                kind, (prim, params, square), mse, _ = r
                if (kind != "id" or square or prim.complexity > SIMPLE_COMPLEXITY
                        or mse > loose):
                    continue
                alt = _expr(kind, prim, params, square, var, float(ys[e, 0]))
                if alt not in seen:
                    seen.add(alt)
                    runners.append((alt, 1.0 - mse / var_y if var_y > 0 else 1.0))
            info["_alternatives"] = runners
        out.append((expr, info))
    return out


#: the fixed-argument terms of two-term leaves ``c1 f1(x) + c2 f2(x) + d`` (library names)
TERMS = ("x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "sqrt", "log", "exp", "sin")
#: how many two-term leaves (the most accurate) compete per row
TWO_TERM_KEEP = 3


def _two_terms(x: torch.Tensor, y: torch.Tensor, library: Sequence[Primitive], var: Any,
               ) -> list[tuple[Any, float, float, str]]:
    """The :data:`TWO_TERM_KEEP` best leaves ``c1 f1(x) + c2 f2(x) + d`` with ``f1, f2`` two of
    :data:`TERMS` (argument ``x`` itself, so the fit is linear least squares), each as
    ``(expr, mse, complexity, label)``; complexity = the sum of the two primitives'. A sum of
    two primitives is no single primitive (Nguyen-12's ``x^4 - x^3``, I.37.4's
    ``x + c sqrt(x)``), and the single-primitive fits only imitate it. ``sin`` and ``exp`` at a
    fixed argument are the unit-frequency and unit-rate terms of the benchmark sets."""
    import sympy

    cx = {p.name: float(p.complexity) for p in library}
    xv = x.double()
    sym = {"x": var, "x^2": var**2, "x^3": var**3, "x^4": var**4, "x^5": var**5,
           "1/x": 1 / var, "1/x^2": var**-2, "sqrt": sympy.sqrt(var), "log": sympy.log(var),
           "exp": sympy.exp(var), "sin": sympy.sin(var)}
    positive, nonzero = bool((xv > 0).all()), bool((xv.abs() > 1e-9).all())
    cols = {}
    for name in TERMS:
        if name not in cx or (name in ("sqrt", "log") and not positive) \
                or (name.startswith("1/") and not nonzero):
            continue
        with np.errstate(all="ignore"):
            v = {"x": xv, "x^2": xv**2, "x^3": xv**3, "x^4": xv**4, "x^5": xv**5, "1/x": 1 / xv,
                 "1/x^2": xv**-2, "sqrt": xv.clamp_min(0).sqrt(), "log": xv.clamp_min(1e-300).log(),
                 "exp": xv.exp(), "sin": xv.sin()}[name]
        if bool(torch.isfinite(v).all()) and float(v.std()) > 0:
            cols[name] = v
    names = list(cols)
    yv = y.double()
    fits = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            A = torch.stack([cols[names[a]], cols[names[b]], torch.ones_like(xv)], 1)
            scale = A.abs().amax(0).clamp_min(1e-300)
            sol = torch.linalg.lstsq(A / scale, yv[:, None]).solution[:, 0] / scale
            mse = float(((A @ sol - yv) ** 2).mean())
            if math.isfinite(mse):
                fits.append((mse, names[a], names[b], sol))
    out = []
    for mse, na, nb, (c1, c2, d) in sorted(fits, key=lambda f: f[0])[:TWO_TERM_KEEP]:
        expr = sympy.Float(float(c1)) * sym[na] + sympy.Float(float(c2)) * sym[nb] \
            + sympy.Float(float(d))
        out.append((expr, mse, cx[na] + cx[nb], f"{na}+{nb}"))
    return out


def _expr(name: str, prim: Primitive, params: dict[str, float], square: bool, var: Any,
          y0: float, poly: Any = None) -> Any:
    """The sympy expression of one fit ``c f(a u + b) + d`` (``u`` = ``var`` or ``var^2``)
    mapped back through transform ``name`` (``y0``: the sign the samples keep)."""
    import sympy

    inner = edge_expr(prim, params, var**2 if square else var, poly)
    return {"id": inner, "log": (1.0 if y0 > 0 else -1.0) * sympy.exp(inner),
            "inv": 1 / inner}[name]


def _mse(expr: Any, var: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``expr(var)`` against ``y`` on ``x`` (inf where not finite)."""
    import sympy

    fn = sympy.lambdify([var], expr, ["scipy", "numpy"])  # scipy: erf, gamma, ... as ufuncs
    with np.errstate(all="ignore"):
        pred = np.broadcast_to(np.asarray(fn(x.numpy()), dtype=float), (len(x),))
    mse = float(((pred - y.numpy()) ** 2).mean())
    return mse if math.isfinite(mse) else math.inf


def fit_univariate(x: torch.Tensor, y: torch.Tensor, library: Sequence[Primitive], var: Any, *,
                   transforms: bool = True, noise_mse: float = 0.0,
                   alternatives: int = 0) -> tuple[Any, dict[str, Any]]:
    """Best library expression of ``y(x)`` in ``var`` (module docstring); ``(expr, info)``."""
    return fit_univariate_batch(x.reshape(1, -1), y.reshape(1, -1), library, var,
                                transforms=transforms, noise_mse=noise_mse,
                                alternatives=alternatives)[0]


__all__ = ["fit_univariate", "fit_univariate_batch"]
