"""Batched fitting of ``y ~ c * f(a*x + b) + d`` for all edges x all primitives.

Algorithm (one batched tensor pass per primitive, all edges at once, float64):

1. **Standardise** each edge: ``t = (x - mean x)/std x``, ``s = (y - mean y)/std y`` and fit
   ``s ~ C f(A t + B) + D``, so the (A, B) search box is scale-free.
2. **Variable projection** (Golub & Pereyra 1973): for any (A, B) the optimal (C, D) is the
   weighted least-squares line of ``s`` on ``F = f(A t + B)``, so the fit is a 2-parameter problem
   ``min_{A,B} SSE(A, B) = sum w (s - s_bar)^2 - cov_w(F, s)^2 / var_w(F)``.
3. **Coarse grid** of (A, B) on a sub-sample of points; the box ``[-4, 4]^2`` is **expanded**
   (doubled, up to ``expand`` times) for every edge whose best cell is on the boundary; the
   ``top_k`` best local maxima of R^2 (3x3 non-maximum suppression) are the starts.
4. **Levenberg-Marquardt** on all fit points from every start (Kaufman's projected Jacobian
   ``J = P_perp * C * f'(u) * [t, 1]``, damping ``lambda * diag(J^T J)``); a step is accepted only
   when it lowers the SSE and keeps every ``u`` inside one interval of the primitive's domain
   with finite values. Best start by SSE, ties to the earlier (better grid) start.
5. Back to original coordinates ``a = A/sx, b = B - A mx/sx, c = sy C, d = sy D + my`` and the
   primitive's canonical form (:meth:`Primitive.canonical`).

``x`` and ``poly3`` are closed-form least squares. R^2 = 1 - SSE/SST on the fit points and on
held-out points (``x_val``/``y_val``, e.g. the edge's observed activations; else every 4th fit
point is held out). A held-out point outside the domain makes the held-out R^2 ``-inf``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inspect_kit.errors import DataError
from inspect_kit.progress import bar

from .library import Primitive, resolve

DT = torch.float64


@dataclasses.dataclass
class FitTable:
    """Fits of every edge (rows) x primitive (columns), parameters in original coordinates."""

    library: tuple[Primitive, ...]
    params: np.ndarray  # (E, K, 4) canonical (a, b, c, d)
    r2: np.ndarray  # (E, K) on the fit points
    r2_val: np.ndarray  # (E, K) held out
    poly: np.ndarray  # (E, 4) cubic fallback coefficients in x (NaN when not in the library)
    spread: np.ndarray  # (E, K) std(f(u)) / rms(f(u)) on the fit points; tiny = degenerate limit
    quadratic: np.ndarray | None = None  # (E, K) how far f(u) is from a quadratic in x (below)

    def imitation(self, tol: float = 0.01) -> np.ndarray:
        """(E, K) True where a transcendental primitive works in its Taylor regime: on the fit
        points the fitted curve ``f(a x + b)`` is a quadratic polynomial in ``x`` to within
        ``tol`` (``quadratic`` = rms of its residual from the best quadratic / its std). A cosine
        whose argument spans a fifth of a period (``cos(0.6 x)`` on [-1, 1]: 0.008) is then the
        parabola it imitates; ``cos(x)`` there (0.022) is not. Powers, logs and the closed-form
        primitives are never imitations (``x^1.5`` on [1, 5] is a quadratic to 0.006)."""
        if self.quadratic is None:
            return np.zeros(self.r2.shape, dtype=bool)
        return self.quadratic < tol

    def degenerate(self, tol: float = 1e-2) -> np.ndarray:
        """(E, K) True where a fit only uses f's local Taylor expansion (c, d large and cancelling,
        e.g. ``cosh(0.002 x)`` or ``-cos(0.18 x)`` standing in for ``x^2``): f changes by less than
        1 % of its size over the data, ``std f(u) / rms f(u) < tol``."""
        return self.spread < tol

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.library]

    @property
    def complexity(self) -> np.ndarray:
        return np.array([p.complexity for p in self.library], dtype=float)


def _wstats(F: torch.Tensor, s: torch.Tensor, w: torch.Tensor):
    """Weighted closed-form (C, D): returns C, D, Fm, var_F."""
    Fm = (w * F).sum(-1, keepdim=True)
    sm = (w * s).sum(-1, keepdim=True)
    Fc = F - Fm
    cov = (w * Fc * (s - sm)).sum(-1, keepdim=True)
    var = (w * Fc * Fc).sum(-1, keepdim=True)
    scale = (w * F * F).sum(-1, keepdim=True)
    ok = var > 1e-13 * scale + 1e-300
    C = torch.where(ok, cov / torch.where(ok, var, torch.ones_like(var)), torch.zeros_like(var))
    D = sm - C * Fm
    return C, D, Fm, var


def _urange(A, B, tmin, tmax):
    lo, hi = A * tmin + B, A * tmax + B
    return torch.minimum(lo, hi), torch.maximum(lo, hi)


def _sse(prim: Primitive, A, B, t, s, w, tmin, tmax):
    """SSE after the closed-form (C, D), +inf where the candidate leaves the domain."""
    u = A * t + B
    Fv = prim.torch_fn()(u)
    C, D, Fm, var = _wstats(Fv, s, w)
    r = s - C * Fv - D
    sse = (w * r * r).sum(-1)
    ok = prim.range_ok(*_urange(A[:, 0], B[:, 0], tmin, tmax)) & torch.isfinite(sse) \
        & torch.isfinite(var[:, 0])
    sse = torch.where(ok, sse, torch.full_like(sse, float("inf")))
    return sse, u, Fv, C, D, Fm, var, r


def _grid_r2(prim: Primitive, t, s, As, Bs, chunk: int = 2_000_000):
    """R^2 (unweighted) on the (A, B) grid for every edge: (E, nA, nB); invalid cells -1."""
    E, P = t.shape
    nA, nB = As.shape[1], Bs.shape[1]
    out = torch.empty(E, nA, nB, dtype=DT)
    per = max(1, chunk // (nA * nB * P))
    sc = s - s.mean(-1, keepdim=True)
    vs = (sc * sc).mean(-1).clamp_min(1e-300)
    tmin, tmax = t.amin(-1), t.amax(-1)
    for e0 in range(0, E, per):
        e1 = min(E, e0 + per)
        A, B = As[e0:e1, :, None], Bs[e0:e1, None, :]
        u = A[..., None] * t[e0:e1, None, None, :] + B[..., None]
        Fv = prim.torch_fn()(u)
        Fm = Fv.mean(-1)
        cov = torch.einsum("eabp,ep->eab", Fv, sc[e0:e1]) / P
        var = torch.einsum("eabp,eabp->eab", Fv, Fv) / P - Fm * Fm
        r2 = cov * cov / (var.clamp_min(1e-300) * vs[e0:e1, None, None])
        good = (torch.isfinite(r2) & (var > 1e-12 * (Fm * Fm + var))
                & prim.range_ok(*_urange(A, B, tmin[e0:e1, None, None], tmax[e0:e1, None, None])))
        out[e0:e1] = torch.where(good, r2.clamp(max=1.0), torch.full_like(r2, -1.0))
    return out


def _fixed(prim: Primitive) -> str:
    """The parameter a primitive's symmetry makes redundant: exp folds b, powers and log fold |a|."""
    return {"exp": "b", "power": "a", "log": "a"}.get(prim.symmetry, "")


def _starts(prim, t, s, n_grid, box, expand, top_k):
    """Top-k local maxima of the coarse R^2 grid per edge, with box expansion on boundary hits."""
    E = t.shape[0]
    fixed = _fixed(prim)
    half = torch.full((E, 2), float(box), dtype=DT)
    vals = torch.full((E, 0), -2.0, dtype=DT)
    cand = torch.zeros((E, 0, 2), dtype=DT)
    todo = torch.ones(E, dtype=torch.bool)
    lin = torch.linspace(-1, 1, n_grid, dtype=DT)
    # f(-u) = +-f(u) (up to an affine map absorbed by c, d): the half plane A >= 0 suffices
    halfplane = prim.symmetry in ("odd", "even", "sin", "tan", "acos", "sigmoid")
    lin_a = lin[n_grid // 2:] if halfplane else lin
    periodic = prim.symmetry == "sin"  # phase B in [-box, box] covers (-pi, pi] already
    ring = torch.linspace(0.5, 1, n_grid, dtype=DT)
    sign = torch.tensor([-1.0, 1.0], dtype=DT)
    for rnd in range(expand + 1):
        idx = todo.nonzero().flatten()
        if len(idx) == 0:
            break
        n = len(idx)
        if fixed == "a":
            As = sign.expand(n, 2)
        elif periodic and rnd > 0:  # new ring [h/2, h] at the first round's resolution or finer
            As = half[idx, :1] * ring
        else:
            As = half[idx, :1] * lin_a
        Bs = torch.zeros(n, 1, dtype=DT) if fixed == "b" else half[idx, 1:] * lin
        r2 = _grid_r2(prim, t[idx], s[idx], As, Bs)
        pooled = F.max_pool2d(r2[:, None], 3, stride=1, padding=1)[:, 0]
        score = torch.where((r2 >= pooled) & (r2 > -0.5), r2, torch.full_like(r2, -2.0))
        flat = score.flatten(1)
        v, j = flat.topk(min(top_k, flat.shape[1]), dim=1)
        nb = Bs.shape[1]
        ia, ib = j // nb, j % nb
        new = torch.stack([As.gather(1, ia), Bs.gather(1, ib)], -1)
        full_v = torch.full((E, v.shape[1]), -2.0, dtype=DT)
        full_c = torch.zeros((E, v.shape[1], 2), dtype=DT)
        full_v[idx], full_c[idx] = v, new
        vals, cand = torch.cat([vals, full_v], 1), torch.cat([cand, full_c], 1)
        best = r2.flatten(1).argmax(1)
        ba, bb = best // nb, best % nb
        hit_a = (((ba == 0) & (not halfplane)) | (ba == As.shape[1] - 1)) & (fixed != "a")
        hit_b = ((bb == 0) | (bb == nb - 1)) & (fixed != "b") & (not periodic)
        if periodic:  # a high frequency need not touch the boundary: widen while the fit is poor
            hit_a = hit_a | (r2.flatten(1).amax(1) < 0.9)
        todo = torch.zeros(E, dtype=torch.bool)
        todo[idx[hit_a | hit_b]] = True
        half[idx[hit_a], 0] *= 2
        half[idx[hit_b], 1] *= 2
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :top_k]
    return vals.gather(1, order), cand.gather(1, order[..., None].expand(-1, -1, 2))


def _lm(prim, th, t, s, w, max_iter: int):
    """Batched Levenberg-Marquardt on (A, B); rows of ``th`` are independent problems."""
    A, B = th[:, :1].clone(), th[:, 1:].clone()
    fixed = _fixed(prim)
    tmin, tmax = t.amin(-1), t.amax(-1)
    sse, u, Fv, C, D, Fm, var, r = _sse(prim, A, B, t, s, w, tmin, tmax)
    lam = torch.full_like(A, 1e-3)
    active = torch.isfinite(sse)
    fp = prim.torch_deriv()
    for _ in range(max_iter):
        G = C * fp(u)
        G = torch.where(torch.isfinite(G), G, torch.zeros_like(G))
        Fc = Fv - Fm
        safe_var = torch.where(var > 0, var, torch.ones_like(var))

        def perp(v, Fc=Fc, safe_var=safe_var):
            vm = (w * v).sum(-1, keepdim=True)
            return v - vm - ((w * (v - vm) * Fc).sum(-1, keepdim=True) / safe_var) * Fc

        J1 = torch.zeros_like(G) if fixed == "a" else perp(G * t)
        J2 = torch.zeros_like(G) if fixed == "b" else perp(G)
        h11, h12, h22 = ((w * J1 * J1).sum(-1, keepdim=True), (w * J1 * J2).sum(-1, keepdim=True),
                         (w * J2 * J2).sum(-1, keepdim=True))
        g1, g2 = (w * J1 * r).sum(-1, keepdim=True), (w * J2 * r).sum(-1, keepdim=True)
        tiny = 1e-12 * (h11 + h22) + 1e-300
        a11, a22 = h11 * (1 + lam) + tiny, h22 * (1 + lam) + tiny
        det = a11 * a22 - h12 * h12
        det = torch.where(det.abs() > 0, det, torch.full_like(det, 1e-300))
        dA, dB = (a22 * g1 - h12 * g2) / det, (a11 * g2 - h12 * g1) / det
        finite = torch.isfinite(dA) & torch.isfinite(dB) & active[:, None]
        dA, dB = torch.where(finite, dA, 0.0), torch.where(finite, dB, 0.0)
        nA, nB = A + dA, B + dB
        sse2, u2, F2, C2, D2, Fm2, var2, r2 = _sse(prim, nA, nB, t, s, w, tmin, tmax)
        acc = (sse2 < sse)[:, None] & finite
        A, B = torch.where(acc, nA, A), torch.where(acc, nB, B)
        rel = (sse - sse2) / (sse.abs() + 1e-30)
        sse = torch.where(acc[:, 0], sse2, sse)
        u, Fv, r = torch.where(acc, u2, u), torch.where(acc, F2, Fv), torch.where(acc, r2, r)
        C, D, Fm, var = (torch.where(acc, C2, C), torch.where(acc, D2, D),
                         torch.where(acc, Fm2, Fm), torch.where(acc, var2, var))
        lam = torch.where(acc, lam * 0.3, lam * 10).clamp(1e-12, 1e12)
        small = (dA.abs() <= 1e-12 * (A.abs() + 1e-6)) & (dB.abs() <= 1e-12 * (B.abs() + 1e-6))
        active = (active & ~small[:, 0] & ~(acc[:, 0] & (rel < 1e-10)) & (lam[:, 0] < 1e8)
                  & (sse > 1e-24))
        if not bool(active.any()):
            break
    return A[:, 0], B[:, 0], C[:, 0], D[:, 0], sse


def _fit_step(t, s, w):
    """``sign``: the best two-level step, scanning every gap between sorted points (exact)."""
    E, P = t.shape
    ts, order = torch.sort(t, dim=1)
    ss, ws = s.gather(1, order), w.gather(1, order)
    cw, cws, cwss = ws.cumsum(1), (ws * ss).cumsum(1), (ws * ss * ss).cumsum(1)
    W, S1, S2 = cw[:, -1:], cws[:, -1:], cwss[:, -1:]
    lw, l1, l2 = cw[:, :-1], cws[:, :-1], cwss[:, :-1]
    rw, r1, r2 = W - lw, S1 - l1, S2 - l2
    sse = (l2 - l1**2 / lw.clamp_min(1e-300)) + (r2 - r1**2 / rw.clamp_min(1e-300))
    gap = ts[:, 1:] > ts[:, :-1]
    sse = torch.where(gap, sse, torch.full_like(sse, float("inf")))
    k = sse.argmin(1, keepdim=True)
    m1 = l1.gather(1, k) / lw.gather(1, k)
    m2 = r1.gather(1, k) / rw.gather(1, k)
    cut = (ts.gather(1, k) + ts.gather(1, k + 1)) / 2
    A, B = torch.ones(E, dtype=DT), -cut[:, 0]
    C, D = (m2 - m1)[:, 0] / 2, (m2 + m1)[:, 0] / 2
    r = s - C[:, None] * torch.sign(A[:, None] * t + B[:, None]) - D[:, None]
    return A, B, C, D, (w * r * r).sum(-1)


def _fit_one(prim, t, s, w, sub, n_grid, box, expand, top_k, max_iter):
    """Best (A, B, C, D, SSE) per edge for one primitive (standardised coordinates)."""
    E = t.shape[0]
    if prim.expr == "sign(x)":
        return _fit_step(t, s, w)
    if prim.symmetry == "linear":
        one, zero = torch.ones(E, 1, dtype=DT), torch.zeros(E, 1, dtype=DT)
        sse, _, _, C, D, _, _, _ = _sse(prim, one, zero, t, s, w, t.amin(-1), t.amax(-1))
        return one[:, 0], zero[:, 0], C[:, 0], D[:, 0], sse
    v0, st = _starts(prim, t[:, sub], s[:, sub], n_grid, box, expand, top_k)
    kk = st.shape[1]
    A, B, C, D, sse_all = _lm(prim, st.reshape(-1, 2), t.repeat_interleave(kk, 0),
                              s.repeat_interleave(kk, 0), w.repeat_interleave(kk, 0), max_iter)
    sse_all = torch.where(v0.reshape(-1) > -0.5, sse_all, torch.full_like(sse_all, float("inf")))
    sse_all = sse_all.reshape(E, kk)
    best = torch.argmin(sse_all, dim=1)[:, None]  # first minimum: deterministic tie-break
    A, B, C, D = (z.reshape(E, kk).gather(1, best)[:, 0] for z in (A, B, C, D))
    return A, B, C, D, sse_all.gather(1, best)[:, 0]


def _canonical(prim: Primitive, raw: tuple[float, ...], probe: np.ndarray) -> tuple[float, ...]:
    """``prim.canonical(*raw)`` when it is the same function at ``probe`` in float64; at extreme
    scales (|x| ~ 1e150) folding ``a`` into ``c`` over- or underflows, and ``raw`` is kept."""
    try:
        canon = prim.canonical(*raw)
    except (OverflowError, ZeroDivisionError):
        return raw
    with np.errstate(all="ignore"):
        want = evaluate_fit(prim, raw, probe)
        got = evaluate_fit(prim, canon, probe)
    ok = np.all(np.isfinite(canon)) and np.allclose(
        got, want, rtol=1e-6, atol=1e-9 * float(np.nanmax(np.abs(want), initial=0.0)),
        equal_nan=True)
    return canon if ok else raw


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each row's largest |value| (1 for an all-zero row), shape (E, 1)."""
    m = v.abs().amax(-1, keepdim=True)
    return torch.where(m > 0, m, torch.ones_like(m))


def _as_rows(v: Any, E: int, name: str) -> torch.Tensor:
    if isinstance(v, (list, tuple)) and v and not np.isscalar(v[0]):
        n = max(len(np.ravel(r)) for r in v)
        out = np.full((len(v), n), np.nan)
        for i, r in enumerate(v):
            r = np.ravel(np.asarray(r, dtype=float))
            out[i, : len(r)] = r
        v = out
    tv = torch.as_tensor(np.asarray(v, dtype=float), dtype=DT)
    if tv.dim() == 1:
        tv = tv[None]
    if tv.dim() != 2 or tv.shape[0] != E:
        raise DataError(f"{name} must have one row per edge ({E}), got shape {tuple(tv.shape)}")
    return tv


def fit_edges(
    x: Any,
    y: Any,
    library: Iterable[str | Primitive] | str | None = None,
    *,
    x_val: Any = None,
    y_val: Any = None,
    weights: Any = None,
    n_grid: int = 41,
    box: float = 4.0,
    expand: int = 3,
    n_sub: int = 128,
    top_k: int = 4,
    max_iter: int = 40,
    progress: bool | None = None,
) -> FitTable:
    """Fit every edge (rows of ``x``, ``y``: (E, P)) with every primitive (see module docstring).

    ``x_val``/``y_val`` (E, Q), NaN-padded or a list of 1-D arrays, are the held-out points.
    """
    lib = resolve(library)
    x = torch.as_tensor(np.asarray(x, dtype=float), dtype=DT)
    x = x[None] if x.dim() == 1 else x
    E = x.shape[0]
    y = _as_rows(y, E, "y")
    if x.shape != y.shape or x.shape[1] < 4:
        raise DataError(f"x and y must both be (edges, points) with >= 4 points, got "
                        f"{tuple(x.shape)} and {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise DataError("edge samples contain NaN or inf; sample the edges on finite inputs")
    w = torch.ones_like(x) if weights is None else _as_rows(weights, E, "weights").clamp_min(0)
    if x_val is None:
        hold = torch.zeros(x.shape[1], dtype=torch.bool)
        hold[1::4] = True
        xv, yv = x[:, hold], y[:, hold]
        x, y, w = x[:, ~hold], y[:, ~hold], w[:, ~hold]
    else:
        xv, yv = _as_rows(x_val, E, "x_val"), _as_rows(y_val, E, "y_val")
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-300)
    # standardise in units of each row's largest |value|: no overflow or underflow of the
    # variance at |x| ~ 1e300 or 1e-300, and a scale-free test for a constant y
    xu, yu = _unit(x), _unit(y)
    mx, sx = (x / xu).mean(-1, keepdim=True), (x / xu).std(-1, keepdim=True)
    sx = torch.where(sx > 0, sx, torch.ones_like(sx))
    my, sy = (y / yu).mean(-1, keepdim=True), (y / yu).std(-1, keepdim=True)
    sy = torch.where(sy > 1e-12, sy, torch.ones_like(sy))
    t, s = (x / xu - mx) / sx, (y / yu - my) / sy
    tv, sv = (xv / xu - mx) / sx, (yv / yu - my) / sy
    mx, sx, my, sy = mx * xu, sx * xu, my * yu, sy * yu
    vmask = torch.isfinite(tv) & torch.isfinite(sv)
    tv, sv = torch.nan_to_num(tv), torch.nan_to_num(sv)
    wv = vmask.to(DT) / vmask.sum(-1, keepdim=True).clamp_min(1)
    sst = (w * (s - (w * s).sum(-1, keepdim=True)) ** 2).sum(-1).clamp_min(1e-300)
    sstv = (wv * (sv - (wv * sv).sum(-1, keepdim=True)) ** 2).sum(-1).clamp_min(1e-300)
    P = t.shape[1]
    sub = torch.linspace(0, P - 1, min(n_sub, P)).round().long().unique()
    K = len(lib)
    params = np.zeros((E, K, 4))
    r2 = np.full((E, K), -np.inf)
    r2v = np.full((E, K), -np.inf)
    spread = np.ones((E, K))
    quad = np.ones((E, K))
    poly = np.full((E, 4), np.nan)
    V2 = torch.stack([torch.ones_like(t), t, t * t], -1) * w.sqrt()[..., None]
    with bar(K, "symbolic fit", progress) as pbar:
        for k, prim in enumerate(lib):
            if prim.symmetry == "poly":
                Vt = torch.stack([t**i for i in range(4)], -1)
                sw = w.sqrt()[..., None]
                beta = torch.linalg.lstsq(Vt * sw, (s * w.sqrt())[..., None]).solution[..., 0]
                sse = (w * (s - (Vt @ beta[..., None])[..., 0]) ** 2).sum(-1)
                pv = (torch.stack([tv**i for i in range(4)], -1) @ beta[..., None])[..., 0]
                ssev = (wv * (sv - pv) ** 2).sum(-1)
                for e in range(E):
                    q = np.polynomial.Polynomial(beta[e].numpy())(
                        np.polynomial.Polynomial([-float(mx[e]) / float(sx[e]), 1 / float(sx[e])]))
                    c = float(sy[e]) * np.pad(q.coef, (0, 4 - len(q.coef)))
                    c[0] += float(my[e])
                    poly[e] = c
                params[:, k] = [1.0, 0.0, 1.0, 0.0]
            else:
                A, B, C, D, sse = _fit_one(prim, t, s, w, sub, n_grid, box, expand, top_k, max_iter)
                u = A[:, None] * tv + B[:, None]
                with np.errstate(all="ignore"):
                    fvv = prim.torch_fn()(u)
                okv = (prim.in_domain(torch.where(vmask, u, B[:, None]))
                       & torch.isfinite(torch.where(vmask, fvv, 0.0)).all(-1))
                ssev = (wv * torch.nan_to_num(sv - C[:, None] * fvv - D[:, None]) ** 2).sum(-1)
                ssev = torch.where(okv, ssev, torch.full_like(ssev, float("inf")))
                fu = prim.torch_fn()(A[:, None] * t + B[:, None])
                spread[:, k] = torch.nan_to_num(
                    fu.std(-1) / (fu * fu).mean(-1).sqrt().clamp_min(1e-300), nan=0.0).numpy()
                if not prim.closed_form and prim.symmetry not in ("power", "log"):
                    quad[:, k] = _quadratic_residual(fu, V2, w)
                for e in range(E):
                    a0, b0, c0, d0 = float(A[e]), float(B[e]), float(C[e]), float(D[e])
                    m, sxe, sye, mye = float(mx[e]), float(sx[e]), float(sy[e]), float(my[e])
                    raw = (a0 / sxe, b0 - a0 * m / sxe, sye * c0, sye * d0 + mye)
                    params[e, k] = _canonical(prim, raw, x[e, [0, -1]].numpy())

            r2[:, k] = (1 - sse / sst).numpy()
            r2v[:, k] = (1 - ssev / sstv).numpy()
            pbar.update(1)
    r2 = np.where(np.isfinite(r2), r2, -np.inf)
    r2v = np.where(np.isnan(r2v), -np.inf, r2v)
    return FitTable(lib, params, r2, r2v, poly, spread, quad)


def _quadratic_residual(fu: torch.Tensor, V2: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """Per row: weighted rms of ``fu`` minus its best quadratic in ``t`` (design ``V2``, rows
    already scaled by ``sqrt w``), over the weighted std of ``fu`` (1 where not finite)."""
    ok = torch.isfinite(fu).all(-1)
    f = torch.where(ok[:, None], fu, torch.zeros_like(fu))
    fm = (w * f).sum(-1, keepdim=True)
    sd = (w * (f - fm) ** 2).sum(-1).sqrt()
    rhs = ((f - fm) * w.sqrt())[..., None]
    beta = torch.linalg.lstsq(V2, rhs).solution
    res = ((rhs - V2 @ beta)[..., 0] ** 2).sum(-1).sqrt()
    out = torch.where(ok & (sd > 0), res / sd.clamp_min(1e-300), torch.ones_like(sd))
    return out.numpy()


def evaluate_fit(prim: Primitive, params: Sequence[float], x: np.ndarray,
                 poly: Sequence[float] | None = None) -> np.ndarray:
    """``c * f(a x + b) + d`` (or the cubic) in numpy-compatible float64, for plots and checks."""
    xt = torch.as_tensor(np.asarray(x, dtype=float), dtype=DT)
    if prim.symmetry == "poly":
        return sum(float(cf) * xt.numpy() ** i for i, cf in enumerate(poly))
    a, b, c, d = (float(v) for v in params)
    with np.errstate(all="ignore"):
        return (c * prim.torch_fn()(a * xt + b) + d).numpy()
