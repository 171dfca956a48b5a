"""Empirical NTK by NTK-vector products (Novak et al. 2022, "Fast Finite Width Neural Tangent
Kernel", ICML, Sec. 3.2).

A column of the kernel is a product of the kernel with a basis vector, and ``Theta = J J^T``
applies in two steps: a vector-Jacobian product ``t = J^T e_(j, b) = J_jb`` (reverse mode, one
single-sample backward pass) and a Jacobian-vector product ``Theta[:, j, :, b] = J t``
(forward mode over the samples). Here a chunk of columns is done at once: the chunk's Jacobian
rows are the tangents, and ``jvp`` pushes them through blocks of the samples up to the chunk's
end (``rows <= cols``; the rest are transposes):

    Theta[i, j, a, b] = (J_i t_jb)_a,      t_jb = J_jb.

The Jacobian is never stored in full, and the ``O^2 P`` contraction per pair of samples becomes
``O`` forward-mode passes: cost ``N O [FP] + N^2 O [JVP] / 2`` (``[JVP]`` about 2 forward
passes); memory ``chunk O P`` plus the kernel. Best for networks whose forward pass is cheap
relative to their parameter count (fully connected layers) and many outputs.

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> from .chunks import chunks
>>> view = ModelView(nn.Linear(3, 1, bias=False), (torch.eye(3),), dtype="float64")
>>> kernel_by_products(view, chunks(view, 2), "trace").tolist()
[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import torch

from inspect_kit.progress import bar
from inspect_kit.view.jacobian import safe_jvp

from . import forms
from .chunks import Chunk, merged, piece, rows


def kernel_by_products(view: Any, parts: list[Chunk], form: str, *,
                       block: int | None = None, progress: bool | None = None) -> torch.Tensor:
    """The kernel in ``form``: tangents from each chunk of ``parts``, pushed through blocks of
    ``block`` samples (default all) by ``jvp``."""
    whole = merged(view)
    n = parts[-1].hi
    g = max(1, min(int(block or n), n))
    K: torch.Tensor | None = None
    total = sum(1 + -(-c.hi // g) for c in parts)
    with bar(total, desc="ntk (ntk-vector products)", progress=progress, unit="step") as pbar:
        for cj in parts:
            tangents = rows(view, cj)  # (nj, O, P): the vjps J^T e_(j, b)
            nj, o, p = tangents.shape
            pbar.update(1)
            if K is None:
                K = torch.zeros(forms.shape(form, n, o), dtype=tangents.dtype,
                                device=tangents.device)
            flat = tangents.reshape(nj * o, p)
            for i0 in range(0, cj.hi, g):
                ci = piece(whole, i0, min(i0 + g, cj.hi))
                out = safe_jvp(view, flat, ci.batch).reshape(nj, o, ci.n, o)  # [j, b, i, a]
                full = out.permute(2, 0, 3, 1)  # [i, j, a, b]
                forms.put(K, form, ci.slice, cj.slice, forms.reduce_full(full, form))
                pbar.update(1)
    assert K is not None
    return K
