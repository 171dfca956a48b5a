"""Inner products and norms of long vectors, accumulated in float64.

A float32 reduction over ``n ~ 10^8`` entries is not float32-accurate: BLAS ``sdot``/``sgemv``
accumulate in float32 with a handful of partial sums, and torch's float32 ``norm`` on CPU does
too, so their relative error grows like ``sqrt(n) eps`` to ``n eps`` for terms of one sign.
Measured on 85.8M random entries: ``x.norm()`` 0.9% off, ``x @ x`` 4e-4, a two-row ``Q @ w``
2e-3 (``x.sum()``, a cascade sum, 3e-8). In Lanczos these errors enter ``alpha_j = q_j^T H q_j``,
``beta_j = ||w||`` and the Gram-Schmidt coefficients, and moved the top Hessian eigenvalue of an
86M-parameter encoder by 4.5e-4 relative while its residual estimate claimed 1e-8.

Here every reduction runs over column chunks of ``CHUNK`` entries and sums them in float64.
Within a chunk the products are formed in float32 and summed with a float64 accumulator
(``(a * b).sum(dtype=float64)``), not by BLAS: how BLAS accumulates depends on the CPU and the
thread count, and on one core of an AMD EPYC a single ``sdot`` over 8192 equal entries was
already 4e-6 off (a 14-row ``sgemv`` over 8192 columns 2e-5), where the chunks above were
1.6e-9 off on the machine they were first measured on. Measured on the EPYC, one thread,
10^7 entries: the dot 1.7e-11 relative in the time of chunked ``sdot``; a 14-row ``Q @ w``
2e-7 (2e-5 with chunked ``sgemv``) at 2x its time, still small beside one Hessian-vector
product. Float64 inputs take one call.

>>> import torch
>>> x = torch.full((10**6,), 0.1, dtype=torch.float32)
>>> exact = float(x.double().norm())
>>> abs(norm(x) - exact) < 1e-6 * exact
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

CHUNK = 1 << 13  # entries per float32 partial reduction


def _chunked(dtype: torch.dtype, n: int) -> bool:
    return dtype != torch.float64 and n > CHUNK


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``a . b`` for 1-D ``a``, ``b`` with float64 accumulation."""
    n = a.shape[0]
    if not _chunked(a.dtype, n):
        return float(torch.dot(a, b))
    return math.fsum(float((a[i:i + CHUNK] * b[i:i + CHUNK]).sum(dtype=torch.float64))
                     for i in range(0, n, CHUNK))


def norm(x: torch.Tensor) -> float:
    """``||x||_2`` of a 1-D ``x`` with float64 accumulation."""
    return math.sqrt(max(dot(x, x), 0.0))


def rows_dot(blk: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``blk @ w`` for a ``(k, L)`` block and an ``L``-vector, as float64 (float32 products
    summed in float64; ``L <= CHUNK`` keeps the temporary small)."""
    if blk.dtype == torch.float64:
        return blk @ w
    return (blk * w).sum(1, dtype=torch.float64)


def project(blocks: Sequence[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """``[B_1; B_2; ...] w`` (float64, length ``sum k_i``) for row blocks ``B_i`` of shape
    ``(k_i, n)``, with float64 accumulation over column chunks."""
    sizes = [b.shape[0] for b in blocks]
    out = torch.zeros(sum(sizes), dtype=torch.float64, device=w.device)
    if not sizes:
        return out
    n = w.shape[0]
    step = n if not _chunked(w.dtype, n) else CHUNK
    for a in range(0, n, step):
        i = 0
        for blk, k in zip(blocks, sizes):
            out[i:i + k] += rows_dot(blk[:, a:a + step], w[a:a + step])
            i += k
    return out
