"""The samples of a model view in contiguous chunks, and their Jacobian rows.

Every NTK method walks the ``N`` samples of a view (its batches merged, in data order) in
chunks ``[lo, hi)`` whose size bounds the memory of one step (:mod:`.cost` picks it).
:func:`rows` gives a chunk's Jacobian ``J[i, a, :] = d f_a(x_i) / d theta`` with the outputs
flattened to ``O`` entries, by the view's per-sample ``vmap``/``jacrev``
(:func:`inspect_kit.view.jacobian.per_sample_jacobian`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from inspect_kit.view.batches import Batch, concat
from inspect_kit.view.jacobian import per_sample_jacobian


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Samples ``lo .. hi-1`` of the view as one batch."""

    lo: int
    hi: int
    batch: Batch

    @property
    def slice(self) -> slice:
        return slice(self.lo, self.hi)

    @property
    def n(self) -> int:
        return self.hi - self.lo


def merged(view: Any) -> Batch:
    """All of the view's samples as one batch (data order)."""
    return concat(list(view.batches))


def piece(whole: Batch, lo: int, hi: int) -> Chunk:
    """Samples ``lo .. hi-1`` of ``whole`` as a chunk."""
    if lo == 0 and hi == whole.n:
        return Chunk(0, hi, whole)
    return Chunk(lo, hi, whole.take(torch.arange(lo, hi)))


def chunks(view: Any, size: int) -> list[Chunk]:
    """Contiguous chunks of at most ``size`` samples covering the view's data."""
    whole = merged(view)
    size = max(1, int(size))
    return [piece(whole, lo, min(lo + size, whole.n)) for lo in range(0, whole.n, size)]


def output_shape(view: Any) -> tuple[int, ...]:
    """The per-sample output shape ``O`` (the model run on the view's first sample)."""
    first = merged(view).take(torch.tensor([0]))
    with torch.no_grad():
        out = view.call(view.full_state(), first)
    return tuple(out.shape[1:])


def rows(view: Any, chunk: Chunk) -> torch.Tensor:
    """The chunk's Jacobian rows ``(n, O, P)`` (outputs flattened)."""
    J = per_sample_jacobian(view, chunk.batch)
    return J.reshape(chunk.n, -1, J.shape[-1])
