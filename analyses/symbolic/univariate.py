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
here or inside ``choose`` (its ``err_floor``, propagated through the transform's derivative).

All rows of one transform are fitted in one batched pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .fit import fit_edges
from .formula import edge_expr
from .library import Primitive
from .select import choose

TRANSFORMS = ("id", "log", "inv")


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


def fit_univariate_batch(xs: torch.Tensor, ys: torch.Tensor, library: Sequence[Primitive],
                         var: Any, *, transforms: bool = True, noise_mse: float = 0.0,
                         ) -> list[tuple[Any, dict[str, Any]]]:
    """:func:`fit_univariate` for every row of ``xs``, ``ys`` ``(E, P)`` (one fit per transform)."""
    import sympy

    xs, ys = xs.double(), ys.double()
    E, P = xs.shape
    fit_idx, val_idx = torch.arange(0, P, 2), torch.arange(1, P, 2)
    results: list[list[tuple]] = [[] for _ in range(E)]
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
        chosen = choose(table, err_floor=np.array(floors))
        for r, e in enumerate(rows):
            row = chosen[r]
            prim = next(p for p in library if p.name == row["function"])
            inner = edge_expr(prim, row["params"], var**2 if square else var, row.get("poly"))
            sign = 1.0 if float(ys[e, 0]) > 0 else -1.0
            expr = {"id": inner, "log": sign * sympy.exp(inner), "inv": 1 / inner}[name]
            fn = sympy.lambdify([var], expr, "numpy")
            with np.errstate(all="ignore"):
                pred = np.broadcast_to(np.asarray(fn(xs[e].numpy()), dtype=float), (P,))
            mse = float(((pred - ys[e].numpy()) ** 2).mean())
            results[e].append((name, expr, mse if math.isfinite(mse) else math.inf,
                               float(row["complexity"]) + (2.0 if square else 0.0),
                               row["function"] + ("(x^2)" if square else "")))
    out = []
    for e in range(E):
        var_y = float(ys[e].var())
        best = min(r[2] for r in results[e])
        ok = [r for r in results[e] if r[2] <= max(2.0 * best, noise_mse) + 1e-10 * var_y]
        name, expr, mse, cx, fn_name = min(ok, key=lambda r: (r[3], TRANSFORMS.index(r[0])))
        r2 = 1.0 - mse / var_y if var_y > 0 else 1.0
        out.append((expr, {"transform": name, "function": fn_name, "r2": r2, "complexity": cx}))
    return out


def fit_univariate(x: torch.Tensor, y: torch.Tensor, library: Sequence[Primitive], var: Any, *,
                   transforms: bool = True, noise_mse: float = 0.0) -> tuple[Any, dict[str, Any]]:
    """Best library expression of ``y(x)`` in ``var`` (module docstring); ``(expr, info)``."""
    return fit_univariate_batch(x.reshape(1, -1), y.reshape(1, -1), library, var,
                                transforms=transforms, noise_mse=noise_mse)[0]


__all__ = ["fit_univariate", "fit_univariate_batch"]
