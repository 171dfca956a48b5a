"""Layer-wise linear mode connectivity (Adilova, Andriushchenko, Kamp, Fischer, Jaggi 2024,
"Layer-wise Linear Mode Connectivity", ICLR).

For each group of tensors ``G`` (by default: the parameters and buffers of one module), move only
``G`` along the line and hold everything else at model A:

    theta_G(t)[n] = (1 - t) A[n] + t B[n]  for n in G,   A[n] otherwise,

and report both barriers of that path (loss and error, every split). A high barrier for a single
layer means the two solutions are not even layer-wise connected there. Tensors outside the
module tree (e.g. a ViT's ``cls_token``) form groups of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import Batches
from inspect_kit.progress import bar

from .interpolate import barrier_linear, barrier_mean, evaluate_points, lerp_stack


def layer_groups(state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Floating tensors grouped by owning module (``layers.0.weight`` -> ``layers.0``)."""
    groups: dict[str, list[str]] = {}
    for n, t in state.items():
        if t.is_floating_point():
            groups.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(n)
    return groups


def layerwise_barriers(
    model: nn.Module,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    splits: Mapping[str, Batches],
    *,
    steps: int = 25,
    loss: Any = None,
    groups: Mapping[str, list[str]] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``{"names", "barrier_mean", "barrier_linear"}`` per group (lists aligned with names)."""
    groups = dict(groups) if groups is not None else layer_groups(state_a)
    names = list(groups)
    t = np.linspace(0.0, 1.0, int(steps))
    bm: dict[str, dict[str, list]] = {"loss": {s: [] for s in splits}, "error": {s: [] for s in splits}}
    bl: dict[str, dict[str, list]] = {"loss": {s: [] for s in splits}, "error": {s: [] for s in splits}}
    with bar(len(names), "layer-wise LMC", progress) as pb:
        for g in names:
            stacked = lerp_stack(state_a, state_b, t, names=set(groups[g]))
            for s, b in splits.items():
                lo, err = evaluate_points(model, stacked, b, loss=loss)
                bm["loss"][s].append(barrier_mean(t, lo))
                bl["loss"][s].append(barrier_linear(t, lo))
                bm["error"][s].append(None if err is None else barrier_mean(t, err))
                bl["error"][s].append(None if err is None else barrier_linear(t, err))
            pb.update(1)
    return {"names": names, "tensors": {g: groups[g] for g in names}, "t_steps": int(steps),
            "barrier_mean": bm, "barrier_linear": bl}
