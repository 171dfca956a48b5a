"""Activation matching (Ainsworth et al. 2023, "Git Re-Basin", Sec. 3.1; Li et al. 2016).

For every permutation group with an activation site (the last module whose output carries the
group's units, e.g. the ReLU after a hidden Linear, a KAN layer's output nodes, the attention
weights of each head) record both models' activations ``Z_A, Z_B (n_samples, n_units)`` on the
data and solve one linear assignment per group,

    pi_g = argmax_P  sum_ij P_ij [Z_A^T Z_B]_ij,

i.e. match units by the (uncentred) cross-correlation ``E[z_A z_B^T]`` (Git Re-Basin's choice; its
Pearson variant is commented out in their code). Groups are independent: B's activations only get
reordered by its own permutations. Groups without an activation site (within-head channels) are
then solved by weight matching with the matched groups held fixed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from inspect_kit.hooks import capture
from inspect_kit.modes import model_mode

from .permutation import PermutationSpec, model_state
from .weight_matching import weight_matching


@torch.no_grad()
def _features(model: nn.Module, sites: dict[str, list[tuple[int, int]]],
              x: torch.Tensor) -> dict[tuple[str, int], torch.Tensor]:
    feats: dict[tuple[str, int], torch.Tensor] = {}
    with model_mode(model, "eval", warn=False), capture(model, list(sites)) as rec:
        model(x)
    for mod, dims in sites.items():
        out = rec.output(mod)
        for _g, d in dims:
            z = out.movedim(d, -1)
            feats[(mod, d)] = z.reshape(-1, z.shape[-1]).double()
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
    sites: dict[str, list[tuple[int, int]]] = {}
    for g in spec.groups:
        if g.witness is not None:
            sites.setdefault(g.witness[0], []).append((g.index, g.witness[1]))
    perms = spec.identity()
    if sites:
        fa = _features(model_a, sites, x)
        fb = _features(model_b, sites, x)
        for mod, dims in sites.items():
            for g, d in dims:
                za, zb = fa[(mod, d)], fb[(mod, d)]
                corr = (za.T @ zb / len(za)).numpy()
                _, cols = linear_sum_assignment(corr, maximize=True)
                perms[g] = torch.as_tensor(np.asarray(cols), dtype=torch.long)
    rest = [g.index for g in spec.groups if g.witness is None]
    if rest:
        perms, _ = weight_matching(spec, model_state(model_a), model_state(model_b), seed=seed,
                                   init=perms, only=rest)
    return perms, len(rest)
