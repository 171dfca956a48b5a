"""Empirical NTK by Jacobian contraction (Novak et al. 2022, "Fast Finite Width Neural Tangent
Kernel", ICML, Sec. 3.1).

Every sample's Jacobian rows ``J_i (O x P)`` are computed once (``N O`` single-sample backward
passes, vectorised by ``vmap``, a chunk of samples at a time) and kept; the kernel is then a
product of Jacobians,

    Theta[i, j, a, b] = sum_p J[i, a, p] J[j, b, p],

evaluated as one GEMM per pair of sample blocks ``rows <= cols`` (the kernel is symmetric, so
half of the blocks are transposes; the block size bounds the GEMM's temporary). Cost
``N O [FP] + N^2 O^2 P / 2`` multiply-adds for the full kernel, ``N^2 O P / 2`` for "trace"
and "per_output"; memory ``N O P`` for the Jacobian plus the kernel. Best when a forward pass
is expensive relative to the parameter count (convolutions, attention over long sequences) or
``O`` is small.

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> from .chunks import chunks
>>> view = ModelView(nn.Linear(3, 1, bias=False), (torch.eye(3),), dtype="float64")
>>> kernel_by_contraction(view, chunks(view, 2), "trace").tolist()   # X X^T for a linear model
[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import torch

from inspect_kit.progress import bar

from . import forms
from .chunks import Chunk, rows


def kernel_by_contraction(view: Any, parts: list[Chunk], form: str, *,
                          block: int | None = None, progress: bool | None = None
                          ) -> torch.Tensor:
    """The kernel in ``form`` over the samples covered by ``parts`` (the Jacobian is computed
    chunk by chunk) in GEMM blocks of ``block`` samples (default all)."""
    n = parts[-1].hi
    g = max(1, min(int(block or n), n))
    starts = range(0, n, g)
    with bar(len(parts) + len(starts) * (len(starts) + 1) // 2, desc="ntk (contraction)",
             progress=progress, unit="step") as pbar:
        J: torch.Tensor | None = None
        for c in parts:
            r = rows(view, c)
            if J is None:
                J = torch.empty(n, *r.shape[1:], dtype=r.dtype, device=r.device)
            J[c.slice] = r
            del r
            pbar.update(1)
        assert J is not None
        K = torch.zeros(forms.shape(form, n, J.shape[1]), dtype=J.dtype, device=J.device)
        for j0 in starts:
            cols = slice(j0, min(j0 + g, n))
            for i0 in range(0, j0 + 1, g):
                rws = slice(i0, min(i0 + g, n))
                forms.put(K, form, rws, cols, forms.block(J[rws], J[cols], form))
                pbar.update(1)
    return K
