"""Interpolation points split over ``torch.distributed`` ranks (curves and layer-wise paths).

Under ``torchrun`` every call of :func:`analyses.lmc.interpolate.evaluate_points` (one curve
stage, or one layer-wise path, on one split) hands each rank a contiguous share of the stacked
points; the rank evaluates them on the full data and one ``all_gather`` puts the values together
on every rank (:func:`inspect_kit.distributed.gather_points`), so the barriers, the refinement
points and the Result are identical everywhere and rank 0 writes them. One collective per
batch of points, none per point. With fewer points than ranks, every rank evaluates them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit import distributed as D


def evaluate_points_sharded(model: nn.Module, stacked: Mapping[str, torch.Tensor], data: Any, *,
                            loss: Any = None, chunk_size: int | None = 8
                            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Same values as ``evaluate_points`` on one process; this rank evaluates only its share."""
    from .interpolate import evaluate_points

    n = next(iter(stacked.values())).shape[0]
    if not D.is_distributed() or n < D.world_size():
        return evaluate_points(model, stacked, data, loss=loss, chunk_size=chunk_size,
                               shard=False)
    lo, hi = D.bounds(n)
    mine = {k: v[lo:hi] for k, v in stacked.items()}
    loss_l, err_l = evaluate_points(model, mine, data, loss=loss, chunk_size=chunk_size,
                                    shard=False)
    cols = np.full((2, n), np.nan)
    cols[0, lo:hi] = loss_l
    if err_l is not None:
        cols[1, lo:hi] = err_l
    loss_all, err_all = D.gather_points(cols[0].tolist(), cols[1].tolist())
    # the task (classification or not) is the same on every rank: err_l is None everywhere or
    # nowhere
    return np.asarray(loss_all), (None if err_l is None else np.asarray(err_all))
