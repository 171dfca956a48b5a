"""Layer-wise linear mode connectivity (Adilova, Andriushchenko, Kamp, Fischer, Jaggi 2024,
"Layer-wise Linear Mode Connectivity", ICLR).

For each group of tensors ``G`` (by default: the moving parameters and buffers of one module),
move only ``G`` along the line and hold everything else at model A:

    theta_G(t)[n] = (1 - t) A[n] + t B[n]  for n in G,   A[n] otherwise,

and report both barriers of that path (loss and error, every split). A high barrier for a single
layer means the two solutions are not even layer-wise connected there. Tensors outside the
module tree (e.g. a ViT's ``cls_token``) form groups of their own.

>>> layer_groups(["layers.0.weight", "layers.0.bias", "cls_token"])
{'layers.0': ['layers.0.weight', 'layers.0.bias'], 'cls_token': ['cls_token']}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from inspect_kit.progress import bar

from .interpolate import barrier_linear, barrier_mean


def layer_groups(names: Iterable[str]) -> dict[str, list[str]]:
    """Tensor names grouped by owning module (``layers.0.weight`` -> ``layers.0``)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(n)
    return groups


def layerwise_barriers(
    views: Mapping[str, Any],
    direction: Mapping[str, torch.Tensor],
    *,
    steps: int = 25,
    engine: str = "auto",
    groups: Mapping[str, list[str]] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``{"names", "barrier_mean", "barrier_linear"}`` per group (lists aligned with names);
    ``direction`` is ``B - A`` over the moving tensors."""
    groups = dict(groups) if groups is not None else layer_groups(direction)
    names = list(groups)
    t = np.linspace(0.0, 1.0, int(steps))
    coefs = torch.as_tensor(t).reshape(-1, 1)
    splits = list(views)
    bm: dict[str, dict[str, list]] = {"loss": {s: [] for s in splits},
                                      "error": {s: [] for s in splits}}
    bl: dict[str, dict[str, list]] = {"loss": {s: [] for s in splits},
                                      "error": {s: [] for s in splits}}
    with bar(len(names), "layer-wise LMC", progress) as pb:
        for g in names:
            d = {k: direction[k] for k in groups[g]}
            for s, view in views.items():
                lo, acc, _ = view.points([d]).run(coefs, engine=engine)
                lo = np.asarray(lo, float)
                err = 1.0 - np.asarray(acc, float) if view.classify else None
                bm["loss"][s].append(barrier_mean(t, lo))
                bl["loss"][s].append(barrier_linear(t, lo))
                bm["error"][s].append(None if err is None else barrier_mean(t, err))
                bl["error"][s].append(None if err is None else barrier_linear(t, err))
            pb.update(1)
    return {"names": names, "tensors": {g: groups[g] for g in names}, "t_steps": int(steps),
            "barrier_mean": bm, "barrier_linear": bl}
