"""Generalised additivity: ``f(x) = g(h_1(x_1) + ... + h_m(x_m))``, tested on a network.

AI Feynman 2.0 (Udrescu, Tan, Feng, Neto, Wu & Tegmark 2020, "AI Feynman 2.0: Pareto-optimal
symbolic regression exploiting graph modularity", NeurIPS) tests whether some invertible ``g``
makes ``g^{-1}(f)`` additive; the test needs only the gradient, not ``g``:

    f = g(sum_i h_i(x_i))   =>   d_i f / d_j f = h_i'(x_i) / h_j'(x_j)

so on a grid of ``(x_i = a, x_j = b)`` (the other variables at a reference point) the unit
gradient directions ``(c, s) = (d_j f, d_i f) / |.|`` satisfy ``s[a, b] v(b) - c[a, b] u(a) = 0``
with ``u = h_i'``, ``v = h_j'``. Stacked over the grid this is a homogeneous least-squares
problem in ``(u, v)``: its smallest singular value (with ``|(u, v)| = 1``, scaled by
``sqrt(#unknowns / #equations)``) is the **residual**, 0 for a generalised-additive ``f``. The
formulation needs no division, so zero derivatives and sign changes of ``g'`` are harmless.

When every pair ``(i, pivot)`` passes, the null vectors give ``h_i'`` on a dense grid (scaled by
the same ``h_pivot'(ref)``); ``h_i`` is their cumulative Simpson integral, fitted with the
primitive library. ``g`` is fitted as a function of ``z = sum h_i`` and, if every ``h_i'`` is
``c_i / x_i`` (each ``h_i`` a logarithm, so the sum is the log of a product of powers
``w = prod x_i^{p_i}``, exponents snapped to simple rationals), of ``w^m`` (``m`` in 1, 2, 1/2,
-1, -2, -1/2); the simplest ``g`` within twice the best error wins, and all its constants are
refitted to the network.
``g`` is fitted with :func:`analyses.symbolic.univariate.fit_univariate` (also through ``log``
and ``1/y``) on network values at data points, and the candidate is kept only when it matches
the network there to ``R^2 >= 1 - tol^2``.

A trained network's gradients are rough (II.11.27's KAN, ``x1 x2 / (1 - x1 x2 / 3) x3 x4``:
pair residual 0.24 on the ``(x1, x2)`` block against a gate of 0.2, at a data R^2 of 0.9995),
so the gate rejects some true ``g(w)`` blocks. :func:`monomial_formula` finds the commonest
such case, ``g`` of one monomial ``w = prod x_i^{e_i}`` (a dimensionless group), from network
values alone: it regresses them on a polynomial in ``log w`` (and in ``w``) for every exponent
vector with entries in 1, -1, 2, -2, 1/2, -1/2, and keeps the one that explains them ten
times better than any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from . import formula as fm
from .library import Primitive

Net = Callable[[torch.Tensor], torch.Tensor]


def gradient(fn: Net, Z: torch.Tensor) -> torch.Tensor:
    """``d fn / d Z`` row by row (autograd; central differences if the function is not
    differentiable by torch)."""
    Z = Z.detach().double().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = fn(Z).double().sum()
            (g,) = torch.autograd.grad(out, Z)
        if torch.isfinite(g).all():
            return g.detach()
    except RuntimeError:
        pass
    Z = Z.detach()
    h = 1e-5 * (Z.abs().amax(0) + 1.0)
    cols = []
    with torch.no_grad():
        for i in range(Z.shape[1]):
            d = torch.zeros_like(Z)
            d[:, i] = h[i]
            cols.append((fn(Z + d).double() - fn(Z - d).double()).reshape(-1) / (2 * h[i]))
    return torch.stack(cols, 1)


def pair_residual(gi: torch.Tensor, gj: torch.Tensor) -> tuple[float, np.ndarray, np.ndarray]:
    """Residual of ``s v(b) - c u(a) = 0`` for gradient components ``gi = d_i f``, ``gj = d_j f``
    on an ``(A, B)`` grid, and the null vector ``(u on A, v on B)`` (module docstring)."""
    gi, gj = gi.double(), gj.double()
    A, B = gi.shape
    norm = torch.sqrt(gi**2 + gj**2)
    keep = norm > 1e-9 * float(norm.max())
    s, c = gi / norm.clamp_min(1e-300), gj / norm.clamp_min(1e-300)
    ia, ib = torch.nonzero(keep, as_tuple=True)
    M = torch.zeros(len(ia), A + B, dtype=torch.float64)
    rows = torch.arange(len(ia))
    M[rows, ia] = -c[ia, ib]
    M[rows, A + ib] = s[ia, ib]
    if len(ia) < A + B:
        return math.inf, np.zeros(A), np.zeros(B)
    _, sv, vh = torch.linalg.svd(M, full_matrices=False)
    vec = vh[-1]
    res = float(sv[-1]) * math.sqrt((A + B) / len(ia))
    return res, vec[:A].numpy(), vec[A:].numpy()


def _grid_points(ref: torch.Tensor, i: int, a: torch.Tensor, j: int, b: torch.Tensor) -> torch.Tensor:
    Z = ref.repeat(len(a) * len(b), 1)
    Z[:, i] = a.repeat_interleave(len(b))
    Z[:, j] = b.repeat(len(a))
    return Z


def derivative_profiles(fn: Net, ref: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                        V: Sequence[int], *, n_dense: int = 129, step: int = 16,
                        ) -> tuple[float, dict[int, tuple[torch.Tensor, np.ndarray]]]:
    """Worst pair residual over ``V`` and, per variable ``i``, ``(grid, h_i'(grid) / h_p'(b*))``
    with one common scale: ``p`` the pivot (largest ``|d_p f(ref)| * range_p``), ``b*`` the point
    of ``p``'s sparse grid (every ``step``-th dense point) where ``|h_p'|`` is largest."""
    V = list(V)
    dense = {i: torch.linspace(float(lo[i]), float(hi[i]), n_dense, dtype=torch.float64) for i in V}
    sparse_idx = torch.arange(0, n_dense, step)
    g_ref = gradient(fn, ref[None])[0]
    span = torch.tensor([float(hi[i] - lo[i]) for i in V], dtype=torch.float64)
    p = V[int(torch.argmax(g_ref[V].abs() * span))]
    q = next(v for v in V if v != p)
    worst, raw = 0.0, {}
    for i in V:  # u: h_i' on i's dense grid; v: h_j' on j's sparse grid (one unknown scale)
        j = p if i != p else q
        a, b = dense[i], dense[j][sparse_idx]
        G = gradient(fn, _grid_points(ref, i, a, j, b))
        res, u, v = pair_residual(G[:, i].reshape(len(a), len(b)), G[:, j].reshape(len(a), len(b)))
        if not math.isfinite(res):
            return math.inf, {}
        worst = max(worst, res)
        raw[i] = (u, v, j)
    _, v_p, _ = raw[next(v for v in V if v != p)]
    k = int(np.argmax(np.abs(v_p)))  # b* = dense[p][sparse_idx[k]]
    prof = {}
    for i in V:
        u, v, j = raw[i]
        if i != p:
            prof[i] = (dense[i], u / v[k])  # h_i' / h_p'(b*)
    u_q = prof[q][1]  # h_q'(x_q) / h_p'(b*)
    u, v, _ = raw[p]  # u ~ h_p', v ~ h_q' on q's sparse grid: rescale so that v = u_q there
    c = float(np.dot(v, u_q[sparse_idx.numpy()]) / max(np.dot(v, v), 1e-300))
    prof[p] = (dense[p], u * c)
    return worst, prof


def integrate(x: torch.Tensor, d: np.ndarray) -> np.ndarray:
    """Cumulative Simpson integral of samples ``d`` on the grid ``x`` (0 at ``x[0]``)."""
    from scipy.integrate import cumulative_simpson

    return cumulative_simpson(d, x=x.numpy(), initial=0.0)


def _snap_ratio(v: float, max_q: int = 4) -> Fraction | None:
    fr = Fraction(v).limit_denominator(max_q)
    return fr if fr != 0 and abs(float(fr) - v) <= 0.05 * max(1.0, abs(v)) else None


def generalised_formula(fn: Net, X: torch.Tensor, ref: torch.Tensor, V: Sequence[int],
                        library: Sequence[Primitive], syms: Sequence[Any], *, tol: float,
                        noise_mse: float = 0.0, n_check: int = 400, alternatives: int = 0,
                        ) -> tuple[Any | None, dict[str, Any]]:
    """``g(sum h_i(x_i))`` for the block ``V`` of ``fn`` (other inputs at ``ref``), or None.

    ``tol``: the largest pair residual for which the construction is attempted (a gate: a
    trained network's gradients are rough, so it is loose). The candidate is kept only when it
    matches ``fn`` on up to ``n_check`` data rows of the block to an MSE of at most
    ``max(10 noise_mse, 1e-6 var f)`` (``noise_mse``: the network's own MSE on the data), i.e.
    as well as the network matches the data.

    ``alternatives``: also return, under the info key ``"_alternatives"`` (sympy expressions
    as fitted, before any refit; pop it before serialising), up to that many runners-up: other
    inner variables or outer functions whose fit error is at most 10x the best. Network values
    cannot tell them from the chosen one (``exp(atanh(x2/x1))`` and an imitation in
    ``x1^2/x2^2`` both match a network to its own error); the caller may ask the data.
    """
    import sympy

    from .univariate import fit_univariate, fit_univariate_batch

    X = X.double()
    lo, hi = X.min(0).values, X.max(0).values
    V = list(V)
    res, prof = derivative_profiles(fn, ref, lo, hi, V)
    info: dict[str, Any] = {"vars": V, "residual": res, "tol": tol}
    if not prof or res > tol:
        return None, info
    hs, leaves = {}, []
    for i in V:  # one variable per call: each row's expression is in its own symbol
        a, d = prof[i]
        e, leaf = fit_univariate(a, torch.as_tensor(integrate(a, d)), library, syms[i],
                                 transforms=False)
        hs[i] = e
        leaves.append({"var": i, **leaf})
    info["inner"] = leaves
    rows = torch.linspace(0, len(X) - 1, min(n_check, len(X))).round().long().unique()
    Z = ref.repeat(len(rows), 1)
    Z[:, V] = X[rows][:, V]
    with torch.no_grad():
        F = fn(Z).double().reshape(-1)
    inner = _product_form(hs, prof, V, X, syms)
    zsym = sympy.Symbol("_z", real=True)
    zs, Fs, kept = [], [], []
    for label, zexpr in inner:
        zf = sympy.lambdify([syms[i] for i in V], zexpr, ["scipy", "numpy"])
        with np.errstate(all="ignore"):
            zv = np.asarray(zf(*[Z[:, i].numpy() for i in V]), dtype=float) * np.ones(len(Z))
        if not np.isfinite(zv).all() or np.ptp(zv) <= 0:
            continue
        order = torch.argsort(torch.as_tensor(zv))
        zs.append(torch.as_tensor(zv)[order])
        Fs.append(F[order])
        kept.append((label, zexpr))
    found, runners = [], []
    if kept:
        fits = fit_univariate_batch(torch.stack(zs), torch.stack(Fs), library, zsym,
                                    noise_mse=noise_mse, alternatives=alternatives)
        for n, ((label, zexpr), (g, gi)) in enumerate(zip(kept, fits)):
            for a, r2 in gi.pop("_alternatives", []):
                runners.append((max(0.0, 1.0 - r2), a.xreplace({zsym: zexpr})))
            found.append((max(0.0, 1.0 - gi["r2"]), gi["complexity"], n, label,
                          g.xreplace({zsym: zexpr}), gi))
    if not found:
        return None, info
    floor = min(f[0] for f in found)
    ok = [f for f in found if f[0] <= 2 * floor + 1e-12]
    err, _, _, label, picked, gi = min(ok, key=lambda f: (f[1], f[2]))
    info.update(outer={"inner": label, **gi})
    # the inner h_i came from integrated gradients: refit every constant to the network values
    expr = fm.refit(fm.fold_pow(picked), syms, Z, F, steps=100)
    with np.errstate(all="ignore"):
        err = 1.0 - fm.r2_score(fm.evaluate(expr, syms, Z), F)
    var_f = float(F.var())
    if not math.isfinite(err) or err * var_f > max(10.0 * noise_mse, 1e-6 * var_f):
        info["rejected"] = f"g fits the network to R^2 {1 - err:.6f} only"  # err = 1 - R^2
        return None, info
    if alternatives:  # as fitted (g on the inner variable); the caller refits what it keeps
        alts: list[Any] = []
        for e_err, e in sorted([(f[0], f[4]) for f in found] + runners, key=lambda t: t[0]):
            if len(alts) >= alternatives or e_err > 10 * floor + 1e-12:
                break
            if e != picked and e not in alts:
                alts.append(e)
        info["_alternatives"] = alts
    return expr, info


#: exponents tried per variable (the first variable of the block has exponent 1)
MONOMIAL_EXPONENTS = (1, -1, 2, -2, 0.5, -0.5)


def monomial_formula(fn: Net, X: torch.Tensor, ref: torch.Tensor, V: Sequence[int],
                     library: Sequence[Primitive], syms: Sequence[Any], *,
                     noise_mse: float = 0.0, n_check: int = 400, degree: int = 8,
                     alternatives: int = 0) -> tuple[Any | None, dict[str, Any]]:
    """``g(w)`` with ``w = prod_i x_i^{e_i}`` for the block ``V`` (2 or 3 variables of one sign
    each, the rest at ``ref``), found from network values alone, or None.

    The generalised-additive case ``h_i = e_i log|x_i|`` (AI Feynman's dimensionless groups:
    ``x1 x2 / (1 - x1 x2 / 3)``, ``1 / (exp(x1 x2 / x3) - 1)``) without gradients, which a rough
    network makes too noisy for :func:`generalised_formula`'s gate. For each exponent vector
    (``e_1 = 1``, the others from :data:`MONOMIAL_EXPONENTS`), the network values on ``n_check``
    data rows are regressed on a degree-``degree`` polynomial in the standardised ``log w`` and
    in the standardised ``w``; ``f`` is taken for a function of ``w`` alone when the better
    leaves at most ``max(10 noise_mse, 1e-4 var f)`` and ten times less than any other exponent
    vector (a smooth ``f`` is nearly a function of many ``w``). ``g`` is then fitted on those
    rows (:func:`analyses.symbolic.univariate.fit_univariate`, also through ``log`` and ``1/y``),
    its constants refitted to the network, and the formula kept only when it matches the network
    to ``max(10 noise_mse, 1e-6 var f)`` (as :func:`generalised_formula`).
    ``alternatives``: as in :func:`generalised_formula` (``g``'s runners-up, as fitted).
    """
    import itertools

    import sympy

    from .univariate import fit_univariate

    V = list(V)
    info: dict[str, Any] = {"vars": V}
    X = X.double()
    if not 2 <= len(V) <= 3 or not all(bool((X[:, i] > 0).all() | (X[:, i] < 0).all())
                                        for i in V):
        return None, {**info, "applies": False}
    rows = torch.linspace(0, len(X) - 1, min(n_check, len(X))).round().long().unique()
    Z = ref.repeat(len(rows), 1)
    Z[:, V] = X[rows][:, V]
    with torch.no_grad():
        F = fn(Z).double().reshape(-1)
    var_f = float(F.var())
    if not var_f > 0:
        return None, {**info, "applies": False}
    floor = max(10.0 * noise_mse, 1e-6 * var_f)
    logs = torch.log(Z[:, V].abs()).numpy()
    Fn = F.numpy()
    scores = []
    for es in itertools.product(*([(1,)] + [MONOMIAL_EXPONENTS] * (len(V) - 1))):
        lw = logs @ np.asarray(es, dtype=float)
        if np.ptp(lw) <= 1e-9:
            continue
        res = math.inf
        for u in (lw, np.exp(lw)):  # smooth in log w or in w
            t = (u - u.mean()) / u.std()
            coef = np.polynomial.polynomial.polyfit(t, Fn, degree)
            res = min(res, float(np.mean((np.polynomial.polynomial.polyval(t, coef) - Fn) ** 2)))
        scores.append((res, es))
    scores.sort(key=lambda r: r[0])
    info["scores"] = [(r, list(es)) for r, es in scores[:3]]
    clear = len(scores) < 2 or scores[0][0] <= 0.1 * scores[1][0]
    if not scores or scores[0][0] > max(floor, 1e-4 * var_f) or not clear:
        return None, {**info, "applies": True}
    es = scores[0][1]
    w = sympy.Integer(1)
    for i, e in zip(V, es):
        base = syms[i] if bool((X[:, i] > 0).all()) else -syms[i]
        w = w * base ** sympy.nsimplify(e)
    wv = torch.as_tensor(np.exp(logs @ np.asarray(es, dtype=float)))
    order = torch.argsort(wv)
    zsym = sympy.Symbol("_w", positive=True)
    g, gi = fit_univariate(wv[order], F[order], library, zsym, noise_mse=noise_mse,
                           alternatives=alternatives)
    alts = [a.xreplace({zsym: w}) for a, _ in gi.pop("_alternatives", [])]
    expr = fm.refit(fm.fold_pow(g.xreplace({zsym: w})), syms, Z, F, steps=100)
    with np.errstate(all="ignore"):
        err = float(((fm.evaluate(expr, syms, Z) - F) ** 2).mean())
    info.update(applies=True, w=str(w), outer=gi, mse=err)
    if not math.isfinite(err) or err > floor:
        info["rejected"] = f"g fits the network to MSE {err:.3g} (bound {floor:.3g})"
        return None, info
    if alternatives:
        info["_alternatives"] = alts
    return expr, info


def _product_form(hs: dict[int, Any], prof: dict[int, tuple[torch.Tensor, np.ndarray]],
                  V: Sequence[int], X: torch.Tensor, syms: Sequence[Any]) -> list[tuple[str, Any]]:
    """Inner variables to try: ``z = sum h_i`` and, when every variable keeps one sign and every
    ``h_i'`` is ``c_i / x_i`` to 2 % in squared error (``h_i = c_i log|x_i|``, whatever
    primitive the noisy integral was fitted with; a wrong guess only adds candidates that ``g``
    fails on), powers ``w^m`` of ``w = prod x_i^{c_i / c_p}`` (exponents snapped to ratios with
    denominators up to 4)."""
    import sympy

    out = [("sum", sympy.Add(*hs.values()))]
    coef = {}
    for i in V:
        if not bool((X[:, i] > 0).all() | (X[:, i] < 0).all()):
            return out
        a, d = prof[i]
        inv = 1.0 / a.numpy()
        c = float(np.dot(d, inv) / np.dot(inv, inv))
        if float(np.sum((d - c * inv) ** 2)) > 2e-2 * float(np.sum(d**2)):
            return out
        coef[i] = c
    piv = max(coef, key=lambda i: abs(coef[i]))
    if not abs(coef[piv]) > 0:  # every profile flat: no product to form
        return out
    w = sympy.Integer(1)
    for i in V:
        fr = _snap_ratio(coef[i] / coef[piv])
        if fr is None:
            return out
        base = syms[i] if bool((X[:, i] > 0).all()) else -syms[i]
        w = w * base ** sympy.Rational(fr.numerator, fr.denominator)
    for m in (1, 2, sympy.Rational(1, 2), -1, -2, sympy.Rational(-1, 2)):
        out.append((f"w^{m}", sympy.powsimp(w**m, force=True)))
    return out


__all__ = ["derivative_profiles", "generalised_formula", "gradient", "integrate", "monomial_formula",
           "pair_residual"]
