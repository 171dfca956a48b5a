"""Weight matching (Ainsworth, Hayase, Srinivasa 2023, "Git Re-Basin", ICLR, Algorithm 1).

Find permutations ``pi`` of model B's hidden units that maximise the inner product of the weights,

    max_pi  sum_tensors < theta_A[tensor], pi(theta_B)[tensor] >,

by coordinate descent: visit the groups in a random order (seeded); for group ``g`` hold the
others fixed and solve the linear assignment problem

    C_g = sum_{(tensor, axis) moved by g} A_(g) . pi_{-g}(B)_(g)^T,   pi_g = argmax_P <C_g, P>

with ``scipy.optimize.linear_sum_assignment`` (``X_(g)`` = the tensor with g's units on the rows,
everything else flattened; a unit of a flattened conv map owns a block of ``h*w`` columns).
Biases, norm scales, KAN spline coefficients, masks and grids enter the cost like every other
moved tensor (the PyPI ``rebasin`` package effectively ignores biases). BatchNorm running
statistics are moved with their channels but left out of the cost (:func:`matching_state`): they
are statistics of the data, not weights, and Git Re-Basin matches parameters only. Stop
after a sweep in which no group gains more than ``tol`` (the procedure terminates: Lemma 2 of the
paper), or after ``max_sweeps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .permutation import PermAxis, PermutationSpec, permute_axis


def matching_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors the weight-matching objective compares: parameters and buffers, without
    BatchNorm running statistics (detached, shared storage)."""
    skip = {f"{n}.{k}" for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for k in ("running_mean", "running_var", "num_batches_tracked")}
    out = {n: p.detach() for n, p in model.named_parameters()}
    out.update({n: b.detach() for n, b in model.named_buffers() if n not in skip})
    return out


def _rows(t: torch.Tensor, axis: int, sizes: tuple[int, ...], k: int) -> torch.Tensor:
    moved = t.movedim(axis, 0)
    x = moved.reshape(*sizes, *moved.shape[1:]).movedim(k, 0)
    return x.reshape(sizes[k], -1)


def _by_group(spec: PermutationSpec) -> list[list[tuple[str, list[PermAxis]]]]:
    """For each group: the tensors it moves, each with all of that tensor's permuted axes."""
    by_tensor: dict[str, list[PermAxis]] = {}
    for ax in spec.axes:
        by_tensor.setdefault(ax.name, []).append(ax)
    return [[(n, axes) for n, axes in by_tensor.items() if any(g in a.groups for a in axes)]
            for g in range(len(spec.groups))]


def group_cost(spec: PermutationSpec, g: int, state_a: Mapping[str, torch.Tensor],
               state_b: Mapping[str, torch.Tensor], perms: Sequence[torch.Tensor],
               by_group: list | None = None) -> np.ndarray:
    """``C_g[i, j]``: inner product of A's unit ``i`` and B's unit ``j`` (other groups applied)."""
    n = spec.groups[g].size
    cost = torch.zeros(n, n, dtype=torch.float64)
    tensors = (by_group or _by_group(spec))[g]
    for name, axes in tensors:
        if name not in state_a:
            continue
        a, b = state_a[name], state_b[name]
        if not a.is_floating_point():
            continue
        for ax in axes:  # B with every other group's permutation applied
            b = permute_axis(b, ax, perms, skip=g)
        for ax in axes:
            for k, gid in enumerate(ax.groups):
                if gid != g:
                    continue
                # A's other sub-axes on this axis are compared with B's permuted ones: fine
                cost += _rows(a, ax.axis, ax.sizes, k).to(cost.dtype) @ \
                    _rows(b, ax.axis, ax.sizes, k).to(cost.dtype).T
    return cost.numpy()


def weight_matching(
    spec: PermutationSpec,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    *,
    seed: int = 0,
    init: Sequence[torch.Tensor] | None = None,
    only: Sequence[int] | None = None,
    max_sweeps: int = 100,
    tol: float = 1e-12,
    restarts: int = 1,
) -> tuple[list[torch.Tensor], int]:
    """Permutations of B's units matching A's weights; returns ``(perms, sweeps)``.

    ``only`` restricts the search to some groups (the rest keep ``init``, identity by default).
    ``restarts > 1`` runs the descent again from random permutations (seeded ``seed + r``) of
    the searched groups and keeps the run with the largest objective ``sum <A, pi(B)>``
    (coordinate descent finds a local optimum only; ``sweeps`` then counts all runs).
    """
    sa = {n: t.double() for n, t in state_a.items() if t.is_floating_point()}
    sb = {n: t.double() for n, t in state_b.items() if t.is_floating_point()}
    best, best_obj, total = None, -np.inf, 0
    start = [p.clone() for p in init] if init is not None else spec.identity()
    searched = list(range(len(spec.groups))) if only is None else list(only)
    for r in range(max(1, int(restarts))):
        if r > 0:
            rand = spec.random(seed + r)
            start = [rand[g] if g in searched else p for g, p in enumerate(start)]
        perms, sweeps = _descent(spec, sa, sb, seed + r, start, only, max_sweeps, tol)
        total += sweeps
        moved = spec.apply(sb, perms)
        obj = float(sum((sa[n] * moved[n]).sum() for n in sa))
        if obj > best_obj + tol:
            best, best_obj = perms, obj
    assert best is not None
    return best, total


def _descent(spec: PermutationSpec, sa: Mapping[str, torch.Tensor],
             sb: Mapping[str, torch.Tensor], seed: int, init: Sequence[torch.Tensor] | None,
             only: Sequence[int] | None, max_sweeps: int, tol: float
             ) -> tuple[list[torch.Tensor], int]:
    perms = [p.clone() for p in init] if init is not None else spec.identity()
    todo = list(range(len(spec.groups))) if only is None else list(only)
    rng = np.random.default_rng(seed)
    by_group = _by_group(spec)
    names = [{n for n, _ in ts} for ts in by_group]
    neighbours = [[h for h in range(len(names)) if names[g] & names[h]] for g in range(len(names))]
    clock, changed_at, solved_at = 0, [0] * len(names), [-1] * len(names)
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        improved = False
        for g in rng.permutation(todo):
            g = int(g)
            if all(changed_at[h] < solved_at[g] for h in neighbours[g]):
                continue  # same cost matrix as last time: the LAP would return the same answer
            cost = group_cost(spec, g, sa, sb, perms, by_group)
            old = perms[g].numpy()
            _, cols = linear_sum_assignment(cost, maximize=True)
            n = len(cols)
            gain = cost[np.arange(n), cols].sum() - cost[np.arange(n), old].sum()
            clock += 1
            if gain > tol:
                perms[g] = torch.as_tensor(cols, dtype=torch.long)
                changed_at[g] = clock
                improved = True
            clock += 1
            solved_at[g] = clock
        if not improved:
            break
    return perms, sweeps
