"""Loss and accuracy of a model, at its own parameters or at other points, over all batches.

The full-data loss is the sample-weighted mean of batch means,
``L = sum_b n_b L_b / sum_b n_b``, so it does not depend on how the data is batched (for losses
that are means over the batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .data import Batches, LossFn, resolve_loss, task_of
from .modes import model_mode
from .params import batched_forward, functional_forward


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Mean loss and (for classification) accuracy over ``n`` samples."""

    loss: float
    accuracy: float | None
    n: int


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    *,
    params: Mapping[str, torch.Tensor] | None = None,
    loss: str | LossFn | None = None,
    mode: str | None = "eval",
) -> Evaluation:
    """Full-data loss (and accuracy) of ``model``, optionally at other ``params`` (functional)."""
    batches = Batches.of(data)
    loss_fn = resolve_loss(loss, batches.first_target())
    total, correct, n = 0.0, 0, 0
    classify = task_of(batches.first_target()) == "classification"
    with model_mode(model, mode, warn=False):
        for x, y in batches:
            out = model(x) if params is None else functional_forward(model, params, x)
            total += float(loss_fn(out, y)) * len(x)
            if classify:
                correct += int((out.argmax(-1) == y).sum())
            n += len(x)
    return Evaluation(total / n, correct / n if classify else None, n)


@torch.no_grad()
def evaluate_many(
    model: nn.Module,
    stacked: Mapping[str, torch.Tensor],
    data: Any,
    *,
    loss: str | LossFn | None = None,
    mode: str | None = "eval",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss (and accuracy) at ``B`` parameter points at once (``stacked[name]: (B, *shape)``).

    Uses ``vmap`` over the points; ``loss`` must be a per-batch mean, as in :func:`evaluate`.
    Returns ``(loss[B], accuracy[B] or None)``.
    """
    batches = Batches.of(data)
    y0 = batches.first_target()
    loss_fn = resolve_loss(loss, y0)
    classify = task_of(y0) == "classification"
    B = next(iter(stacked.values())).shape[0]
    total = torch.zeros(B, dtype=torch.float64)
    correct = torch.zeros(B, dtype=torch.float64)
    n = 0
    with model_mode(model, mode, warn=False):
        for x, y in batches:
            out = batched_forward(model, stacked, x, chunk_size=chunk_size)
            per_point = torch.stack([loss_fn(out[i], y) for i in range(B)])
            total += per_point.double() * len(x)
            if classify:
                correct += (out.argmax(-1) == y).double().sum(-1)
            n += len(x)
    return total / n, (correct / n if classify else None)
