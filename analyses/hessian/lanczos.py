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
Giraud et al. 2005). A breakdown (``beta_j ~ 0``: an invariant subspace was found) restarts
with a random vector orthogonal to the basis, so repeated eigenvalues are found too.

Unlike power iteration (PyHessian), Lanczos converges at both ends of the spectrum at once and
much faster when eigenvalues are close (the rate depends on the gap relative to the spread,
not on lambda_2 / lambda_1). Cost: one product per step, memory ``(steps + 1) x n``.

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

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar

WHICH = ("largest", "smallest", "magnitude", "both")


@dataclasses.dataclass
class Tridiagonal:
    """Output of :func:`lanczos_tridiag` for ``k`` parallel starts: ``alpha (k, m)``,
    ``beta (k, m)`` (``beta[:, -1]`` is the residual coefficient ``beta_m``) and the basis
    ``Q (k, m, n)``."""

    alpha: np.ndarray
    beta: np.ndarray
    Q: torch.Tensor

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

    Full reorthogonalisation (classical Gram-Schmidt, two passes) against every stored vector.
    ``stop(tri)`` is asked after each step and ends the iteration early when it returns True.
    """
    if v0.dim() == 1:
        v0 = v0.unsqueeze(0)
    k, n = v0.shape
    steps = int(min(steps, n))
    Q = torch.zeros(k, steps, n, dtype=v0.dtype, device=v0.device)
    Q[:, 0] = v0 / v0.norm(dim=1, keepdim=True)
    alpha = np.zeros((k, steps))
    beta = np.zeros((k, steps))
    m = 0
    for j in range(steps):
        q = Q[:, j]
        w = matvec(q)
        a = (w * q).sum(1)
        w = w - a[:, None] * q
        if j > 0:
            w = w - torch.as_tensor(beta[:, j - 1], dtype=w.dtype, device=w.device)[:, None] * Q[:, j - 1]
        basis = Q[:, : j + 1]
        for _ in range(2):
            c = torch.einsum("kjn,kn->kj", basis, w)
            w = w - torch.einsum("kj,kjn->kn", c, basis)
            a = a + c[:, j]
        b = w.norm(dim=1)
        alpha[:, j] = a.detach().cpu().double().numpy()
        beta[:, j] = b.detach().cpu().double().numpy()
        m = j + 1
        if on_step is not None:
            on_step(m)
        tri = Tridiagonal(alpha[:, :m], beta[:, :m], Q[:, :m])
        if m == steps or (stop is not None and stop(tri)):
            return tri
        scale = np.maximum(np.abs(alpha[:, :m]).max(1), beta[:, :m].max(1))
        broke = beta[:, j] <= 1e-10 * np.maximum(scale, 1e-300)
        if broke.any():  # invariant subspace: restart with a random orthogonal vector
            r = torch.randn(k, n, dtype=w.dtype, device=w.device, generator=generator)
            for _ in range(2):
                r = r - torch.einsum("kj,kjn->kn", torch.einsum("kjn,kn->kj", basis, r), basis)
            mask = torch.as_tensor(broke, device=w.device)
            w = torch.where(mask[:, None], r, w)
            beta[broke, j] = 0.0
            b = torch.where(mask, r.norm(dim=1), b)
        Q[:, j + 1] = w / b[:, None]
    return Tridiagonal(alpha[:, :m], beta[:, :m], Q[:, :m])


@dataclasses.dataclass(frozen=True)
class Eigs:
    """Ritz values (sorted descending), their residual norms, converged flags, optional vectors."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    vectors: torch.Tensor | None
    steps: int
    products: int


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
    progress: bool | None = None,
) -> Eigs:
    """``k`` eigenvalues of ``op`` at the end(s) chosen by ``which`` (see :data:`WHICH`).

    Stops once every wanted Ritz value has residual ``beta_m |s_i[m]| <= tol * max|theta|``
    (default ``tol=1e-6``), or after ``max_steps`` products (default ``min(n, max(300, 20 k))``).
    ``which="both"`` returns the ``k`` largest and the ``k`` smallest. Values are sorted in
    descending order. ``return_vectors=True`` adds the unit Ritz vectors ``(len, n)``.
    """
    if which not in WHICH:
        raise OptionError(f"which must be one of {WHICH}, got {which!r}")
    if int(k) < 1:
        raise OptionError(f"k must be >= 1, got {k!r}")
    n = op.n
    k = min(int(k), n)
    want = min(k * (2 if which == "both" else 1), n)
    steps = int(min(n, max_steps if max_steps is not None else max(300, 20 * int(k))))
    first = int(min(steps, min_steps if min_steps is not None else want + 2))
    if steps < want:
        raise OptionError(f"max_steps={steps} is below the {want} eigenvalues asked for")
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    v0 = torch.randn(1, n, generator=g, dtype=op.dtype, device=op.device)
    state: dict[str, float] = {"res": float("nan")}

    def stop(tri: Tridiagonal) -> bool:
        m = tri.alpha.shape[1]
        if m < first:
            return False
        theta, s = tri.ritz(0)
        idx = _select(theta, k, which)
        norm = max(np.abs(theta).max(), 1e-300)
        res = tri.beta[0, -1] * np.abs(s[-1, idx])
        state["res"] = float(res.max() / norm)
        return bool(np.all(res <= tol * norm))

    start = op.hvp_count
    with bar(steps, desc=f"lanczos ({which})", progress=progress, unit="hvp") as pbar:
        def on_step(m: int) -> None:
            pbar.update(1)
            pbar.set_postfix(hvp=op.hvp_count - start, residual=f"{state['res']:.1e}",
                             refresh=False)

        tri = lanczos_tridiag(op.matvec, v0, steps, generator=g, stop=stop, on_step=on_step)
    theta, s = tri.ritz(0)
    idx = _select(theta, k, which)
    idx = idx[np.argsort(-theta[idx], kind="stable")]
    norm = max(np.abs(theta).max(), 1e-300)
    res = tri.beta[0, -1] * np.abs(s[-1, idx])
    vectors = None
    if return_vectors:
        S = torch.as_tensor(s[:, idx], dtype=op.dtype, device=op.device)
        vectors = (S.T @ tri.Q[0]).contiguous()
    return Eigs(eigenvalues=theta[idx].copy(), residuals=res, converged=res <= tol * norm,
                vectors=vectors, steps=tri.alpha.shape[1], products=op.hvp_count - start)
