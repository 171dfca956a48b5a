"""Sparse rational functions of the inputs: ``y = P(x) / Q(x)`` or ``y = sqrt(P(x) / Q(x))``
with ``P, Q`` polynomials of low total degree, found by linear least squares.

Many laws are rational in their variables (relativistic velocity addition
``(u + v) / (1 + u v / c^2)``, Michaelis-Menten-like saturations ``x1 x2 / (1 + x1^2 / 2)``)
or the square root of one (``(x1 - x2 x4) / sqrt(1 - x2^2 / x3^2)``). Neither a separable split
nor an edge-by-edge composition finds them when no variable separates; a rational fit does,
because ``y = P/Q`` is *linear* in the coefficients once multiplied out (Pade-type
linearisation, as in rational SINDy, Kaheman et al. 2020):

    ``P(x) - t Q(x) = 0``  with ``t = y^m`` (``m`` = 1 or 2),

so the coefficients ``c = (p, q)`` are the right singular vector of the smallest singular value
of ``A = [M_P(x), -t M_Q(x)]`` (monomial columns scaled to unit norm; ``||c|| = 1`` fixes the
scale of the pair).

**Sparsity.** For each power ``m`` and degree pair ``(d_P, d_Q)`` (total degree, at most
:data:`MAX_UNKNOWNS` coefficients), terms are removed one at a time, the smallest scaled
coefficient first (sequential thresholding), refitting after each removal; every support on the
path is scored on held-out rows by a Bayesian information criterion

    ``BIC = N ln(MSE + 1e-12 var y) + K ln N``

(``K`` coefficients, one more for the root of ``sqrt(P/Q)``; ``N`` held-out rows; MSE of ``y``
itself; Schwarz 1978; the floor :data:`FLOOR` makes every relative error below 1e-6 count as
exact), and the best over all paths is kept. A fit that is exact on noise-free data wins by
orders of magnitude in ``N ln MSE``; among fits at the noise floor the fewer terms win.

The candidate is offered only when its held-out MSE is at most ``gate`` (the caller passes the
network's own MSE against the data: a rational fit worse than the network explains nothing new)
and it has at most :data:`MAX_TERMS` terms. The scale is fixed by setting to 1 the coefficient
that leaves the most of the others near integers (ties: the largest term of ``Q``), so ``2 x1
x2 / (x1^2 + 2)`` comes out with integers; the caller snaps and refits the rest.

>>> import torch, sympy
>>> g = torch.Generator().manual_seed(0)
>>> X = 1 + 4 * torch.rand(400, 3, generator=g, dtype=torch.float64)
>>> y = (X[:, 1] + X[:, 2]) / (1 + X[:, 1] * X[:, 2] / X[:, 0] ** 2)
>>> e, info = rational_fit(X, y, sympy.symbols("x1:4"))
>>> sympy.simplify(e - (sympy.Symbol("x2") + sympy.Symbol("x3")) / (1 + sympy.Symbol("x2")
...     * sympy.Symbol("x3") / sympy.Symbol("x1") ** 2)) == 0, info["degrees"], info["power"]
(True, (3, 2), 1)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: largest number of coefficients (both polynomials) of a degree pair that is tried
MAX_UNKNOWNS = 120
#: largest total degree of either polynomial
MAX_DEGREE = 4
#: a candidate with more terms (both polynomials) is not offered: the laws of the benchmarks
#: need at most 7, approximations of non-rational laws that reach the gate need more
MAX_TERMS = 8
#: relative floor of the held-out MSE in the criterion: below a relative RMS error of 1e-6 a
#: fit counts as exact (targets stored in float32 carry 6e-8 of rounding, which extra tiny
#: terms would otherwise chase)
FLOOR = 1e-12


def monomials(n: int, degree: int) -> list[tuple[int, ...]]:
    """Exponent tuples of the monomials of ``n`` variables with total degree <= ``degree``,
    by degree.

    >>> monomials(2, 2)
    [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0)]
    """
    out = []
    for d in range(degree + 1):
        out += sorted(e for e in itertools.product(range(d + 1), repeat=n) if sum(e) == d)
    return out


def _design(X: np.ndarray, exps: Sequence[tuple[int, ...]]) -> np.ndarray:
    return np.stack([np.prod(X ** np.array(e), axis=1) for e in exps], 1)


def _null_vector(A: np.ndarray) -> np.ndarray:
    """Unit vector minimising ``||A c||`` (columns of ``A`` already scaled)."""
    _, _, vt = np.linalg.svd(A, full_matrices=False)
    return vt[-1]


def _path(MP: np.ndarray, MQ: np.ndarray, t: np.ndarray, fit: np.ndarray,
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Supports and coefficients (unscaled) from the full support down to one term in each
    polynomial, the smallest scaled coefficient removed first."""
    nP = MP.shape[1]
    A = np.concatenate([MP, -t[:, None] * MQ], 1)[fit]
    norms = np.sqrt((A ** 2).mean(0))
    norms[norms == 0] = 1.0
    A = A / norms
    keep = np.arange(A.shape[1])
    path = []
    while True:
        c = _null_vector(A[:, keep])
        full = np.zeros(A.shape[1])
        full[keep] = c / norms[keep]
        path.append((keep.copy(), full))
        order = np.argsort(np.abs(c))
        removable = [j for j in order
                     if (keep[j] < nP and (keep < nP).sum() > 1)
                     or (keep[j] >= nP and (keep >= nP).sum() > 1)]
        if not removable:
            return path
        keep = np.delete(keep, removable[0])


def rational_fit(X: torch.Tensor, y: torch.Tensor, syms: Sequence[Any], *,
                 gate: float | None = None, powers: Sequence[int] = (1, 2),
                 scale: torch.Tensor | None = None, max_exponents: Sequence[int] | None = None,
                 ) -> tuple[Any | None, dict[str, Any]]:
    """The sparse rational (or square root of a rational) formula of ``y`` on inputs ``X``
    (module docstring), as a sympy expression in ``syms``, or None when no fit's held-out MSE
    is at most ``gate`` (default ``1e-6 var y``) with at most :data:`MAX_TERMS` terms.

    With ``scale`` (one positive or negative value per row, e.g. ``x2`` when ``y`` is ``x2``
    times a function of ``x1 / x2``), the rational is fitted to ``y / scale`` and scored as
    ``scale * P/Q`` against ``y``, so criteria of fits on different inputs compare.
    ``max_exponents``: the highest power of each column in a monomial (a column ``sin w`` next
    to ``cos w`` gets 1: ``sin^2 w = 1 - cos^2 w`` would make the design rank-deficient, and the
    null vector would be that identity instead of the law).

    Even rows fit, odd rows score. Returns ``(expression, info)``; ``info`` has the power,
    the degree pair, the number of terms, the held-out relative RMS error and the criterion
    ``bic``."""
    import sympy

    Xn = X.double().numpy()
    yn = y.double().reshape(-1).numpy()
    sc = np.ones_like(yn) if scale is None else scale.double().reshape(-1).numpy()
    N, n = Xn.shape
    var = float(yn.var())
    info: dict[str, Any] = {"power": None, "degrees": None, "terms": None, "rel_rms": None,
                            "bic": None}
    if N < 20 or not var > 0 or not np.isfinite(Xn).all() or not np.isfinite(yn).all() \
            or not np.isfinite(sc).all() or not (np.abs(sc) > 0).all():
        return None, info
    u = yn / sc
    gate = 1e-6 * var if gate is None else gate
    fit, check = np.arange(0, N, 2), np.arange(1, N, 2)
    n_check = len(check)
    best: tuple[float, Any] | None = None
    for m in powers:
        if m == 2 and not (u > 0).all() and not (u < 0).all():
            continue
        sign = 1.0 if u.mean() >= 0 else -1.0
        t = u ** m
        for dP in range(MAX_DEGREE + 1):
            for dQ in range(MAX_DEGREE + 1):
                eP, eQ = monomials(n, dP), monomials(n, dQ)
                if max_exponents is not None:
                    eP, eQ = [[e for e in es if all(a <= b for a, b in zip(e, max_exponents))]
                              for es in (eP, eQ)]
                if len(eP) + len(eQ) > MAX_UNKNOWNS or len(eP) + len(eQ) >= len(fit):
                    continue
                MP, MQ = _design(Xn, eP), _design(Xn, eQ)
                for keep, c in _path(MP, MQ, t, fit):
                    p, q = c[:len(eP)], c[len(eP):]
                    with np.errstate(all="ignore"):
                        ratio = (MP[check] @ p) / (MQ[check] @ q)
                        pred = sc[check] * (ratio if m == 1 else sign * np.sqrt(ratio))
                        mse = float(((pred - yn[check]) ** 2).mean())
                    if not math.isfinite(mse):
                        continue
                    k = len(keep) + (m == 2) + (scale is not None)  # root, scale: one more
                    bic = n_check * math.log(mse + FLOOR * var) + k * math.log(n_check)
                    if k <= MAX_TERMS and mse <= gate and (best is None or bic < best[0]):
                        best = (bic, (m, sign, dP, dQ, eP, eQ, p, q, mse))
    if best is None:
        return None, info
    bic, (m, sign, dP, dQ, eP, eQ, p, q, mse) = best
    c = np.concatenate([p, q])
    # scale: among the terms of at least 1e-3 of their polynomial's largest, the coefficient
    # that leaves the most others near integers (ties: the largest term of Q)
    nz = np.nonzero(c)[0]
    size = np.concatenate([np.abs(_design(Xn, eP) * p).mean(0), np.abs(_design(Xn, eQ) * q).mean(0)])
    big = [j for j in nz if size[j] >= 1e-3 * (size[:len(p)].max() if j < len(p)
                                               else size[len(p):].max())]

    def integral(j: int) -> tuple[int, float]:
        r = c[nz] / c[j]
        return (int((np.abs(r - np.round(r)) < 1e-3 * np.maximum(1, np.abs(r))).sum()),
                float(size[j]) if j >= len(p) else -1.0)

    j = max(big, key=integral)
    c = c / c[j]

    def poly(coef: np.ndarray, exps: Sequence[tuple[int, ...]]) -> Any:
        out = sympy.Integer(0)
        for a, e in zip(coef, exps):
            if a != 0:
                r = round(a)
                val = sympy.Integer(r) if abs(a - r) < 1e-9 * max(1, abs(a)) else sympy.Float(a)
                out += val * sympy.Mul(*[s ** k for s, k in zip(syms, e)])
        return out

    expr = sympy.cancel(poly(c[:len(p)], eP) / poly(c[len(p):], eQ))  # common factors out
    if m == 2:
        expr = sign * sympy.sqrt(expr)
    info.update(power=m, degrees=(dP, dQ), terms=int(len(nz)),
                rel_rms=math.sqrt(mse / var), bic=bic)
    return expr, info


__all__ = ["monomials", "rational_fit"]
