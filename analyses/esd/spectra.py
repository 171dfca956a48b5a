"""Eigenvalues of ``W^T W`` for a list of slices, pooled and sorted (the ESD, no 1/N scaling).

Two routes:

* :func:`svd_evals` (``mode="compat"``): WeightWatcher 0.7.7's route. Every slice is cast to
  float32 then float64 (as ``torch_T_to_np(...).astype(float)``), its singular values come from
  ``scipy.linalg.svd`` (LAPACK gesdd) and ``lambda = sigma^2``.
* :func:`gram_evals` (``mode="fast"``): float64 Gram matrix of the smaller side
  (``W^T W`` or ``W W^T``, BLAS ``dsyrk``, half the flops of a product) and its eigenvalues
  (LAPACK ``dsyevr``, MRRR); many small same-shape slices go through one batched
  ``torch.linalg.eigvalsh``. Squaring the condition number costs accuracy only in the smallest
  eigenvalues (absolute error ~ eps * lambda_max). A float32 eigensolver was tried and rejected:
  its ~5e-6 relative error on the top eigenvalues flipped xmin between near-tied KS candidates
  (|delta alpha| up to 1.05 on a random 768/3072 encoder); float32 Gram + float64 eigensolver
  moved alpha by <= 2.3e-5, float64 throughout by <= 1e-11.
* :func:`topk_evals`: the top ``k`` eigenvalues only (ARPACK Lanczos, matrix-vector products
  only), for matrices whose smaller side exceeds ``max_evals``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import scipy.linalg
import torch
from scipy.linalg import blas, lapack

_BATCH_MAX_SIDE = 96


def svd_evals(mats: list[torch.Tensor], scale: float | None = None) -> np.ndarray:
    """Pooled ``sigma^2`` of every slice (float64 SVD), sorted ascending.

    ``scale`` multiplies each float64 slice before the SVD (WeightWatcher's conv2d_norm).
    """
    out = []
    for W in mats:
        a = W.detach().to("cpu").float().numpy().astype(float)
        if scale is not None:
            a = a * scale
        sv = scipy.linalg.svd(a, compute_uv=False)
        sv = np.sort(sv)[-min(a.shape):]
        out.append(sv * sv)
    return np.sort(np.concatenate(out)) if out else np.zeros(0)


def _as_float64(W: torch.Tensor, workspace: dict | None) -> np.ndarray:
    """``W`` as a C-ordered float64 array, copied into a reused buffer of its shape if given.

    A fresh 20 MB array costs ~18 ms of page faults (a 768 x 3072 slice); a reused one ~2 ms.
    """
    src = W.detach().to("cpu")
    if workspace is None:
        return np.ascontiguousarray(src.to(torch.float64).numpy())
    key = ("w", tuple(W.shape))
    buf = workspace.get(key)
    if buf is None:
        buf = workspace[key] = np.empty(tuple(W.shape), dtype=np.float64)
    if src.dtype in (torch.float32, torch.float64, torch.float16):
        np.copyto(buf, src.numpy())
    else:  # bfloat16 and friends have no numpy dtype
        np.copyto(buf, src.to(torch.float32).numpy())
    return buf


def _gram_eig_one(a: np.ndarray, workspace: dict | None = None) -> np.ndarray:
    """Eigenvalues of the smaller Gram matrix of one float64 matrix ``a`` (n, m)."""
    n, m = a.shape
    at = a.T  # Fortran-ordered view (m, n) of a C-ordered a
    if not at.flags.f_contiguous:
        at = np.asfortranarray(at)
    trans = 0 if n >= m else 1
    k = min(n, m)
    c = None
    if workspace is not None:
        c = workspace.get(("g", k))
        if c is None:
            c = workspace[("g", k)] = np.empty((k, k), dtype=np.float64, order="F")
    if c is None:
        g = blas.dsyrk(1.0, at, trans=trans)  # at at^T = a^T a, or at^T at = a a^T
    else:
        g = blas.dsyrk(1.0, at, beta=0.0, c=c, trans=trans, overwrite_c=1)
    res = lapack.dsyevr(g, compute_v=0, overwrite_a=1)
    w, m_found, info = res[0], res[2], res[-1]
    if info != 0:  # pragma: no cover - LAPACK failure is not expected on a finite Gram matrix
        return np.linalg.eigvalsh(blas.dsyrk(1.0, at, trans=trans), UPLO="U")
    return w[:m_found]


def gram_evals(mats: list[torch.Tensor], workspace: dict | None = None) -> np.ndarray:
    """Pooled eigenvalues of the float64 Gram matrices of every slice, clipped at 0, sorted.

    ``workspace``: a dict kept across calls (one :func:`analyses.esd.esd` run) that holds
    float64 buffers by shape, so repeated same-shape layers do not pay fresh allocations.
    """
    out: list[np.ndarray] = []
    groups: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
    for W in mats:
        groups[tuple(W.shape)].append(W)
    for shape, ws in groups.items():
        if len(ws) > 1 and min(shape) <= _BATCH_MAX_SIDE:
            s = torch.stack([w.detach().to("cpu", torch.float64) for w in ws])
            if shape[0] < shape[1]:
                g = s @ s.transpose(1, 2)
            else:
                g = s.transpose(1, 2) @ s
            out.append(torch.linalg.eigvalsh(g).reshape(-1).double().numpy())
        else:
            for w in ws:
                out.append(_gram_eig_one(_as_float64(w, workspace), workspace))
    ev = np.concatenate(out) if out else np.zeros(0)
    return np.sort(np.clip(ev, 0.0, None))


def topk_evals(mats: list[torch.Tensor], k: int, *, seed: int = 0) -> np.ndarray:
    """Top ``k`` eigenvalues of every slice by a partial eigensolver, pooled and sorted.

    ARPACK Lanczos on ``W^T W`` through ``scipy.sparse.linalg.svds`` (only matrix-vector products
    with ``W``; the Gram matrix is never formed), with a seeded start vector.
    """
    from scipy.sparse.linalg import svds

    out = []
    rng = np.random.default_rng(seed)
    for W in mats:
        a = W.detach().to("cpu", torch.float32).numpy()
        kk = min(k, min(a.shape) - 1)
        v0 = rng.standard_normal(min(a.shape))
        s = svds(a, k=kk, v0=v0, return_singular_vectors=False, solver="arpack")
        out.append(np.asarray(s, dtype=np.float64) ** 2)
    return np.sort(np.concatenate(out)) if out else np.zeros(0)


def shuffled(mats: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
    """Each slice with its entries randomly permuted (the randomised-W null of WeightWatcher)."""
    res = []
    for W in mats:
        flat = W.detach().to("cpu").reshape(-1)
        perm = torch.from_numpy(rng.permutation(flat.numel()))
        res.append(flat[perm].reshape(W.shape))
    return res
