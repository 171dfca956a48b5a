"""Extreme eigenvalues of the Hessian by the Lanczos method with full reorthogonalisation.

Lanczos (1950) builds an orthonormal basis ``Q_m = [q_1 .. q_m]`` of the Krylov space
``K_m(H, q_1) = span{q_1, H q_1, ..., H^{m-1} q_1}`` in which ``H`` is tridiagonal:

    H Q_m = Q_m T_m + beta_m q_{m+1} e_m^T,   T_m = tridiag(beta_{j-1}, alpha_j, beta_j).

The eigenpairs ``(theta_i, s_i)`` of ``T_m`` give Ritz pairs ``(theta_i, y_i = Q_m s_i)`` whose
residual is known without another product:

    || H y_i - theta_i y_i || = beta_m |s_i[m]|       (Paige 1971; Golub & Van Loan 2013, 10.1),

so every value comes with a residual norm and a ``converged`` flag (residual <= tol * ||H||,
||H|| estimated by the largest |theta|). For a symmetric matrix an eigenvalue lies within the
residual of its Ritz value (Weyl / Kahan), and within ``residual^2 / gap`` once isolated.
Floating-point loss of orthogonality (ghost copies of converged values) is prevented by
reorthogonalising every new vector against all previous ones, twice ("twice is enough",
Giraud et al. 2005). A breakdown (``beta_j ~ 0``: an invariant subspace was found, which holds
one copy of each eigenvalue it touches) restarts with a random vector orthogonal to the basis
and runs at least ``want + 2`` more products before converged values are trusted, so copies of
repeated eigenvalues are found too (a single start vector cannot see a multiplicity whose
first copy converges long before any breakdown; block methods can).

Unlike power iteration (PyHessian), Lanczos converges at both ends of the spectrum at once and
much faster when eigenvalues are close (the rate depends on the gap relative to the spread,
not on lambda_2 / lambda_1). Cost: one product per step.

**Memory.** The basis grows on demand (:mod:`.basis`, in the products' dtype) and never beyond
the byte budget ``memory`` (default: half of the available memory). When the basis would not
fit, :func:`lanczos_eigs` runs the **thick-restart** Lanczos method (Wu & Simon 2000, "Thick-
restart Lanczos method for large symmetric eigenvalue problems", SIAM J. Matrix Anal. Appl.):
at ``m`` vectors it keeps the ``l`` wanted Ritz vectors ``Y = Q S_l`` and the residual
direction ``q_{m+1}``, in which ``H`` is an arrowhead matrix

    Y^T H Y = diag(theta_1..theta_l),   q_{m+1}^T H y_i = beta_m s_i[m],

and continues from ``q_{m+1}``; the residual bound above holds for the dense projected matrix
``T = Q^T H Q`` at every step. A budget too small for even ``k + 3`` vectors is refused with a
message saying what fits.

>>> import torch
>>> from analyses.hessian.operator import MatrixOperator
>>> A = MatrixOperator(torch.diag(torch.arange(1.0, 51.0, dtype=torch.float64)))
>>> r = lanczos_eigs(A, k=2, which="largest", progress=False)
>>> [round(v, 8) for v in r.eigenvalues.tolist()]
[50.0, 49.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from inspect_kit.errors import OptionError, SizeLimitError
from inspect_kit.memory import budget, human
from inspect_kit.progress import bar

from .basis import Basis, capacity

WHICH = ("largest", "smallest", "magnitude", "both")


@dataclasses.dataclass
class Tridiagonal:
    """Output of :func:`lanczos_tridiag` for ``k`` parallel starts: ``alpha (k, m)`` and
    ``beta (k, m)`` (``beta[:, -1]`` is the residual coefficient ``beta_m``)."""

    alpha: np.ndarray
    beta: np.ndarray

    def ritz(self, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of ``T_m`` for start ``i``."""
        a, b = self.alpha[i], self.beta[i, :-1]
        if len(a) == 1:
            return a.copy(), np.ones((1, 1))
        return eigh_tridiagonal(a, b)


def lanczos_tridiag(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    v0: torch.Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    stop: Callable[[Tridiagonal], bool] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Tridiagonal:
    """Run Lanczos from the rows of ``v0 (k, n)`` in parallel (one batched product per step).

    Full reorthogonalisation (classical Gram-Schmidt, two passes) against every stored vector;
    each start's basis grows on demand (:class:`.basis.Basis`). ``stop(tri)`` is asked after
    each step and ends the iteration early when it returns True. Used by SLQ, whose caller
    bounds ``k * steps * n`` by the memory budget.
    """
    if v0.dim() == 1:
        v0 = v0.unsqueeze(0)
    k, n = v0.shape
    steps = int(min(steps, n))
    bases = [Basis(n, v0.dtype, v0.device) for _ in range(k)]
    q = v0 / v0.norm(dim=1, keepdim=True)
    alpha = np.zeros((k, steps))
    beta = np.zeros((k, steps))
    m = 0
    for j in range(steps):
        for i in range(k):
            bases[i].append(q[i])
        w = matvec(q)
        rows, b = [], []
        for i in range(k):
            wi, c = bases[i].orthogonalize(w[i].clone())
            alpha[i, j] = float(c[j])
            rows.append(wi)
            b.append(float(wi.norm()))
        beta[:, j] = b
        m = j + 1
        if on_step is not None:
            on_step(m)
        tri = Tridiagonal(alpha[:, :m], beta[:, :m])
        if m == steps or (stop is not None and stop(tri)):
            return tri
        scale = np.maximum(np.abs(alpha[:, :m]).max(1), beta[:, :m].max(1))
        for i in range(k):
            if beta[i, j] <= 1e-10 * max(scale[i], 1e-300):  # invariant subspace: restart
                r = torch.randn(n, dtype=w.dtype, device=w.device, generator=generator)
                rows[i], _ = bases[i].orthogonalize(r)
                beta[i, j] = 0.0
        q = torch.stack([r / max(float(r.norm()), 1e-300) for r in rows])
    return Tridiagonal(alpha[:, :m], beta[:, :m])


@dataclasses.dataclass(frozen=True)
class Eigs:
    """Ritz values (sorted descending), their residual norms, converged flags, optional vectors."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    vectors: torch.Tensor | None
    steps: int
    products: int
    restarts: int = 0
    basis_size: int = 0
    error_bounds: np.ndarray | None = None


def _select(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    order = np.argsort(theta)
    if which == "largest":
        return order[::-1][:k]
    if which == "smallest":
        return order[:k]
    if which == "magnitude":
        return np.argsort(-np.abs(theta))[:k]
    top = order[::-1][:k]
    bottom = [i for i in order[:k] if i not in set(top.tolist())]
    return np.concatenate([top, np.asarray(bottom, dtype=int)])


def basis_capacity(n: int, dtype: torch.dtype, want: int, steps: int,
                   memory: int | float | str | None) -> int:
    """Basis vectors :func:`lanczos_eigs` may keep: ``steps`` when they fit in the budget,
    else what fits (thick restart); refuses a budget below ``want + 3`` vectors."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    cap = capacity(n, itemsize, budget(memory))
    need = min(n, want + 3)
    if cap < need:
        hint = f"{need * n * itemsize * 2 // 10**9 + 1}GB"
        raise SizeLimitError(
            f"the Lanczos basis needs at least {need} vectors of {n:,} entries "
            f"({human(need * n * itemsize)}) but the memory budget holds {cap} "
            f"({human(budget(memory))}); raise memory= (e.g. memory='{hint}'), ask for fewer "
            "eigenvalues, or restrict include= to fewer parameters")
    return int(min(n, steps, max(cap, need)))


def lanczos_eigs(
    op,
    k: int = 5,
    *,
    which: str = "largest",
    tol: float = 1e-6,
    max_steps: int | None = None,
    min_steps: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    memory: int | float | str | None = None,
    basis_size: int | None = None,
    criterion: str = "residual",
    progress: bool | None = None,
) -> Eigs:
    """``k`` eigenvalues of ``op`` at the end(s) chosen by ``which`` (see :data:`WHICH`).

    Stops once every wanted Ritz value has residual ``||H y - theta y|| <= tol * max|theta|``
    (``criterion="residual"``, default, ``tol=1e-6``: eigenvalues then agree to about the
    squared residual over the gap, and Ritz vectors are accurate) or is within
    ``tol * max|theta|`` of an eigenvalue by the bound of :func:`error_bounds`
    (``criterion="eigenvalue"``: fewer products when only the values matter), or after
    ``max_steps`` products (default ``min(n, max(300, 20 k))``).
    ``which="both"`` returns the ``k`` largest and the ``k`` smallest. Values are sorted in
    descending order. ``return_vectors=True`` adds the unit Ritz vectors ``(len, n)``.
    ``memory`` bounds the basis (bytes or "8GB"; default half the available memory);
    ``basis_size`` caps it explicitly. A basis smaller than the step cap runs thick restarts.
    """
    if which not in WHICH:
        raise OptionError(f"which must be one of {WHICH}, got {which!r}")
    if criterion not in ("eigenvalue", "residual"):
        raise OptionError(f"criterion must be 'eigenvalue' or 'residual', got {criterion!r}")
    if int(k) < 1:
        raise OptionError(f"k must be >= 1, got {k!r}")
    n = op.n
    k = min(int(k), n)
    want = min(k * (2 if which == "both" else 1), n)
    steps = int(min(n, max_steps if max_steps is not None else max(300, 20 * int(k))))
    if steps < want:
        raise OptionError(f"max_steps={steps} is below the {want} eigenvalues asked for")
    m_max = basis_capacity(n, op.dtype, want, steps, memory)
    if basis_size is not None:
        m_max = int(min(m_max, max(int(basis_size), min(n, want + 3))))
    first = int(min(steps, min_steps if min_steps is not None else want + 2))
    keep = int(min(m_max - 2, max(want + 2, m_max // 2)))  # Ritz vectors kept at a restart
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    Q = Basis(n, op.dtype, op.device)
    q = torch.randn(n, generator=g, dtype=op.dtype, device=op.device)
    q = q / q.norm()
    T = np.zeros((m_max, m_max))
    beta, products, restarts, fresh = 0.0, 0, 0, 0
    theta = s = idx = None
    res = np.zeros(0)
    norm = 1e-300
    with bar(steps, desc=f"lanczos ({which})", progress=progress, unit="hvp") as pbar:
        while True:
            j = Q.m
            Q.append(q)
            w = op.matvec(q)
            products += 1
            w, c = Q.orthogonalize(w)
            h = c.double().cpu().numpy()
            T[: j + 1, j] = h
            T[j, : j + 1] = h
            beta = float(w.norm())
            m = Q.m
            theta, s = np.linalg.eigh(T[:m, :m])
            idx = _select(theta, k, which)
            norm = max(float(np.abs(theta).max()), 1e-300)
            res = beta * np.abs(s[-1, idx])
            err = res if criterion == "residual" else error_bounds(theta, beta * np.abs(s[-1]), idx)
            pbar.update(1)
            pbar.set_postfix(error=f"{float(err.max()) / norm:.1e}", restarts=restarts,
                             refresh=False)
            # after a breakdown (an invariant subspace below n dimensions, which holds one copy
            # of each eigenvalue it touches) the search continues in the complement for at
            # least `first` products before converged Ritz values are trusted: that is where
            # the copies of repeated eigenvalues are
            breakdown = beta <= 1e-10 * norm and m < n
            if products - fresh >= first and np.all(err <= tol * norm) and not breakdown:
                break
            if products >= steps or (m == n and not restarts):
                break
            if beta <= 1e-10 * norm:  # invariant subspace: continue with a fresh direction
                r = torch.randn(n, generator=g, dtype=op.dtype, device=op.device)
                w, _ = Q.orthogonalize(r)
                beta_next = 0.0
                fresh = products
            else:
                beta_next = beta
            if Q.m == m_max:  # thick restart: keep the wanted Ritz vectors
                lock = _both_ends(theta, keep) if which == "both" else \
                    _select(theta, keep, which)
                S = torch.as_tensor(s[:, lock], dtype=torch.float64)
                Q.combine(S)
                l = len(lock)
                T[:] = 0.0
                T[np.arange(l), np.arange(l)] = theta[lock]
                T[l, :l] = beta_next * s[-1, lock]
                T[:l, l] = T[l, :l]
                restarts += 1
            q = w / max(float(w.norm()), 1e-300)
    idx = idx[np.argsort(-theta[idx], kind="stable")]
    res = beta * np.abs(s[-1, idx])
    err = res if criterion == "residual" else error_bounds(theta, beta * np.abs(s[-1]), idx)
    vectors = None
    if return_vectors:
        vectors = _ritz_vectors(Q, s[:, idx], op.dtype)
    return Eigs(eigenvalues=theta[idx].copy(), residuals=res, converged=err <= tol * norm,
                vectors=vectors, steps=products, products=products, restarts=restarts,
                basis_size=m_max, error_bounds=err)


def error_bounds(theta: np.ndarray, res_all: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bounds on ``|lambda - theta_i|`` for the Ritz values ``idx``: the residual ``r_i``
    (Kahan) and, once the Ritz value is isolated, the gap bound ``r_i^2 / delta_i`` with
    ``delta_i`` the distance to the nearest other Ritz value less that value's residual (the
    Kato-Temple / Parlett gap theorem with the unknown spectrum gap estimated from the Ritz
    values); the smaller of the two."""
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        others = np.delete(np.arange(len(theta)), i)
        if len(others) == 0:
            out[k] = res_all[i]
            continue
        delta = np.min(np.abs(theta[others] - theta[i]) - res_all[others])
        out[k] = res_all[i] if delta <= res_all[i] else min(res_all[i], res_all[i] ** 2 / delta)
    return out


def _both_ends(theta: np.ndarray, keep: int) -> np.ndarray:
    order = np.argsort(theta)
    lo, hi = order[: keep // 2], order[::-1][: keep - keep // 2]
    return np.unique(np.concatenate([hi, lo]))


def _ritz_vectors(Q: Basis, S: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    St = torch.as_tensor(S, dtype=dtype, device=Q.device)  # (m, r)
    out = torch.zeros(St.shape[1], Q.n, dtype=dtype, device=Q.device)
    for j in range(Q.m):
        out.add_(St[j][:, None] * Q.vector(j)[None, :])
    return out
