"""Progress measures per training snapshot: the grokking curves of Nanda et al. 2023.

For every state dict of a trajectory (e.g. a kit checkpoint's snapshots) and the *final*
model's key frequencies (as in the paper, arXiv 2301.05217, Section 5.1), one forward pass over
the ``p^2`` grid gives the logits, from which come the full, restricted and excluded loss and
accuracy on each split (:mod:`.ablation`); the embedding of the snapshot gives its spectrum and
the share of its energy in the key frequencies; ``weight_norm`` is the sum of squared
parameters (the paper's "total sum of squared weights", which weight decay drives down during
the clean-up phase).

Logits that are exactly ``cos(w_1 (a + b - c))`` lose nothing when restricted to frequency 1:

>>> import math
>>> p, a = 5, torch.arange(5)
>>> pairs = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
>>> c = torch.arange(p, dtype=torch.float64)
>>> logits = 9 * torch.cos(2 * math.pi * (a[:, None, None] + a[None, :, None] - c) / p)
>>> m = measures(logits, [1], {"all": (pairs, pairs.sum(1) % p)})["all"]
>>> m["accuracy"], m["restricted_accuracy"], abs(m["loss"] - m["restricted_loss"]) < 1e-12
(1.0, 1.0, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar
from inspect_kit.view import ModelView
from inspect_kit.view.batches import Batch

from .ablation import excluded_logits, restricted_logits, split_metrics
from .grid import run_grid
from .locate import Points, token_matrix
from .spectrum import key_share, spectrum


def state_at(view: ModelView, snapshot: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The view's full state with the snapshot's tensors (cast to the view's dtype/device)."""
    full = dict(view.state)
    unknown = [k for k in snapshot if k not in full]
    missing = [k for k in view.names if k not in snapshot]
    if unknown or missing:
        raise OptionError(f"a trajectory state does not match the model (unknown "
                          f"{unknown[:3]}, missing {missing[:3]}); pass snapshots of this "
                          "architecture")
    for k, v in snapshot.items():
        if tuple(v.shape) != tuple(full[k].shape):
            raise OptionError(f"trajectory tensor {k!r} has shape {tuple(v.shape)}, the model's "
                              f"{tuple(full[k].shape)}; pass snapshots of this architecture")
        v = v.detach()
        full[k] = v.to(view.device, view.dtype) if v.is_floating_point() else v.to(view.device)
    return full


def measures(logits: torch.Tensor, key: Sequence[int],
             splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Full, restricted and excluded loss and accuracy of grid logits on each split."""
    variants = {"": logits, "restricted_": restricted_logits(logits, key),
                "excluded_": excluded_logits(logits, key)}
    out: dict[str, dict[str, float]] = {}
    for split, (pairs, target) in splits.items():
        row: dict[str, float] = {}
        for prefix, lg in variants.items():
            row[f"{prefix}loss"], row[f"{prefix}accuracy"] = split_metrics(lg, pairs, target)
        row["n"] = len(target)
        out[split] = row
    return out


def trajectory_measures(view: ModelView, snapshots: Sequence[Mapping[str, torch.Tensor]],
                        epochs: Sequence[float], batch: Batch, points: Points, p: int,
                        key: Sequence[int],
                        splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                        progress: bool | None) -> dict[str, Any]:
    """The per-snapshot arrays of :attr:`FourierResult.trajectory` (module docstring)."""
    rows: dict[str, list[Any]] = {"epoch": list(epochs)}
    with bar(len(snapshots), "fourier trajectory", progress) as pb:
        for snap in snapshots:
            state = state_at(view, snap)
            logits, _ = run_grid(view, state, batch, p, position=points.position)
            for split, m in measures(logits, key, splits).items():
                for name, value in m.items():
                    if name != "n":
                        rows.setdefault(f"{split}_{name}", []).append(value)
            energy = spectrum(token_matrix(state, points.embedding, points.embedding_axis, p), p)
            rows.setdefault("embedding_spectrum", []).append(energy.sqrt().numpy())
            rows.setdefault("key_share", []).append(key_share(energy, key))
            rows.setdefault("weight_norm", []).append(
                float(sum(float(state[k].double().pow(2).sum()) for k in view.names)))
            pb.update(1)
    return {k: np.asarray(v, dtype=float) for k, v in rows.items()}
