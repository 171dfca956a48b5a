"""Activation matching (Ainsworth et al. 2023, "Git Re-Basin", Sec. 3.1; Li et al. 2016).

For every permutation group with an activation site (the last module call whose output carries
the group's units, e.g. the ReLU after a hidden Linear, a KAN layer's output nodes, the attention
weights of each head; for a ResNet block's ReLU module, which runs twice, its first call for the
inner channels and its second for the residual stream) record both models' activations
``Z_A, Z_B (n_samples, n_units)`` on the data and solve one linear assignment per group,

    pi_g = argmax_P  sum_ij P_ij [Z_A^T Z_B]_ij,

i.e. match units by the (uncentred) cross-correlation ``E[z_A z_B^T]`` (Git Re-Basin's choice; its
Pearson variant is commented out in their code). Groups are independent: B's activations only get
reordered by its own permutations. Groups without an activation site (within-head channels) are
then solved by weight matching with the matched groups held fixed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from inspect_kit.modes import model_mode

from .permutation import PermutationSpec
from .renorm import hooked
from .weight_matching import matching_state, weight_matching

Site = tuple[int, int, int]  # (group, call, dim)


@torch.no_grad()
def _features(model: nn.Module, sites: dict[str, list[Site]],
              x: torch.Tensor) -> dict[tuple[str, int, int], torch.Tensor]:
    """``(module, call, dim) -> (samples x positions, units)`` activations, copied inside the
    hook (a later in-place op, e.g. ``out += identity``, may overwrite a module's output)."""
    feats: dict[tuple[str, int, int], torch.Tensor] = {}
    count = dict.fromkeys(sites, -1)

    def keep(mod: str):
        def fn(_m: nn.Module, _i: Any, out: Any) -> None:
            count[mod] += 1
            for _g, c, d in sites[mod]:
                if c in (-1, count[mod]):  # -1: every call, the last one stays
                    z = out.movedim(d, -1)
                    feats[(mod, c, d)] = z.reshape(-1, z.shape[-1]).to(torch.float64, copy=True)
        return fn

    with model_mode(model, "eval", warn=False), hooked(model, {m: keep(m) for m in sites}):
        model(x)
    return feats


def activation_matching(
    spec: PermutationSpec,
    model_a: nn.Module,
    model_b: nn.Module,
    x: torch.Tensor,
    *,
    seed: int = 0,
) -> tuple[list[torch.Tensor], int]:
    """Permutations of B's units matching A's activations on the inputs ``x``; returns
    ``(perms, n_weight_matched)``."""
    sites: dict[str, list[Site]] = {}
    for g in spec.groups:
        if g.witness is not None:
            sites.setdefault(g.witness[0], []).append((g.index, g.witness_call, g.witness[1]))
    perms = spec.identity()
    if sites:
        fa = _features(model_a, sites, x)
        fb = _features(model_b, sites, x)
        for mod, dims in sites.items():
            for g, c, d in dims:
                za, zb = fa[(mod, c, d)], fb[(mod, c, d)]
                corr = (za.T @ zb / len(za)).numpy()
                _, cols = linear_sum_assignment(corr, maximize=True)
                perms[g] = torch.as_tensor(np.asarray(cols), dtype=torch.long)
    rest = [g.index for g in spec.groups if g.witness is None]
    if rest:
        perms, _ = weight_matching(spec, matching_state(model_a), matching_state(model_b), seed=seed,
                                   init=perms, only=rest)
    return perms, len(rest)
