"""The permutation symmetries of a network, derived from the model itself.

:func:`permutation_spec` runs one forward pass of a copy of the model under the axis tracer
(:mod:`analyses.lmc.tracer`) and returns a :class:`PermutationSpec`: the groups of hidden units
that can be permuted (each a set of ``(tensor, axis)`` members) and, for every parameter and
buffer axis, which groups move it. No per-architecture table is involved; what it finds, e.g.:

* MLP ``Linear -> act -> Linear``: one group per hidden layer: ``weight[j, :]`` and ``bias[j]``
  of the producing layer and ``weight[:, j]`` of the next one (Ainsworth et al. 2022, Sec. 3).
* zoo KAN: a hidden node ``j`` of layer ``l``: ``coef/scale_base/scale_sp/mask[j, ...]`` and
  ``bias[j]`` of layer ``l``; ``coef/scale_base/scale_sp/mask[:, j]`` and ``grid[j]`` of ``l+1``.
* zoo ViT: each MLP block's hidden units (``fc1`` out, ``fc2`` in), the attention heads as units
  (blocks of ``qkv`` rows, ``proj`` columns, per-head KArAt coefficients), the within-head
  channels, and the residual stream shared by every block (embeddings, LayerNorms, ``qkv``/
  ``fc1`` inputs, ``proj``/``fc2`` outputs, ``head`` input).

* torchvision ResNet-18: one residual stream per stage (the stem's conv/BN output joins stage
  1's; ``out += identity`` joins every block's ``bn2`` and the ``downsample`` conv/BN of the
  stage; the stream's next consumers are the next stage's ``conv1``/``downsample`` inputs or
  ``fc``'s input after the pooling), and each block's inner channel (``conv1`` out, ``bn1``,
  ``conv2`` in): the groups of Git Re-Basin's ResNet permutation spec.

A function the tracer has no rule for keeps every axis it touches in place; the groups that are
kept in place *only* because of such functions are reported (:attr:`PermutationSpec.frozen`)
and announced with an :class:`UnknownOpWarning` naming the functions and the groups.

Permutation convention: ``perm[g]`` is a LongTensor; the permuted model's unit ``i`` of group
``g`` is the original's unit ``perm[g][i]`` (``W'[i] = W[perm[i]]``).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from inspect_kit.errors import UnsupportedModelError

from .tracer import AxisTracer, tensors_in

State = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PermAxis:
    """Axis ``axis`` of tensor ``name`` is the row-major product of ``sizes``; sub-axis ``k`` is
    moved by group ``groups[k]`` (-1: stays in place)."""

    name: str
    axis: int
    groups: tuple[int, ...]
    sizes: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PermGroup:
    """One set of interchangeable units: ``size`` units, the axes it moves, an activation site."""

    index: int
    name: str
    size: int
    members: tuple[tuple[str, int], ...]
    witness: tuple[str, int] | None  # (module name, output dim) carrying these units, if any
    witness_call: int = -1  # which call of the witness module (a ResNet block's ReLU runs twice)


class UnknownOpWarning(UserWarning):
    """The permutation tracer met functions without a rule and kept some unit groups in place."""


@dataclasses.dataclass(frozen=True)
class FrozenGroup:
    """Units that would be a permutation group but for ``ops`` (functions without a rule)."""

    name: str
    size: int
    ops: tuple[str, ...]
    members: tuple[tuple[str, int], ...]

    def info(self) -> dict[str, Any]:
        return {"group": self.name, "size": self.size, "ops": list(self.ops),
                "members": [f"{n}[{a}]" for n, a in self.members]}


@dataclasses.dataclass(frozen=True)
class PermutationSpec:
    """Permutation groups of a model and the tensor axes each one moves; ``unknown_ops``: the
    functions without a rule met in the forward; ``frozen``: the groups they kept in place."""

    groups: tuple[PermGroup, ...]
    axes: tuple[PermAxis, ...]
    unknown_ops: tuple[str, ...] = ()
    frozen: tuple[FrozenGroup, ...] = ()

    def identity(self) -> list[torch.Tensor]:
        return [torch.arange(g.size) for g in self.groups]

    def random(self, seed: int = 0) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(int(seed))
        return [torch.randperm(g.size, generator=gen) for g in self.groups]

    def axes_of(self, group: int) -> list[PermAxis]:
        return [a for a in self.axes if group in a.groups]

    def apply(self, state: Mapping[str, torch.Tensor], perms: Sequence[torch.Tensor]) -> State:
        """A new state dict with every listed axis permuted (tensors not listed are shared)."""
        out = dict(state)
        for ax in self.axes:
            if ax.name in out:
                out[ax.name] = permute_axis(out[ax.name], ax, perms)
        return out

    def describe(self) -> list[dict[str, Any]]:
        return [{"group": g.name, "size": g.size, "members": [f"{n}[{a}]" for n, a in g.members]}
                for g in self.groups]

    def unknown_message(self) -> str | None:
        """One line naming the unknown functions and the groups they froze (None if none)."""
        if not self.unknown_ops:
            return None
        ops = ", ".join(self.unknown_ops)
        if not self.frozen:
            return (f"permutation tracer: no rule for {ops}; the axes it touches are kept in "
                    "place, but no group of units was lost to it")
        shown = "; ".join(f"{f.name} ({f.size} units, by {', '.join(f.ops)})"
                          for f in self.frozen[:8])
        more = f"; and {len(self.frozen) - 8} more" if len(self.frozen) > 8 else ""
        return (f"permutation tracer: no rule for {ops}; {len(self.frozen)} group(s) of units "
                f"are kept in place (not permuted) because of it: {shown}{more}. Alignment "
                "cannot match those units, so barriers after matching may stay high")


def permute_axis(t: torch.Tensor, ax: PermAxis, perms: Sequence[torch.Tensor | None],
                 skip: int | None = None) -> torch.Tensor:
    """Apply the groups' permutations to one axis of ``t`` (group ``skip`` left out)."""
    moved = t.movedim(ax.axis, 0)
    shape = moved.shape
    x = moved.reshape(*ax.sizes, *shape[1:])
    for k, g in enumerate(ax.groups):
        if g >= 0 and g != skip and perms[g] is not None:
            x = x.index_select(k, perms[g])
    return x.reshape(shape).movedim(0, ax.axis)


def model_state(model: nn.Module) -> State:
    """Parameters and buffers by name (detached, shared storage)."""
    out = {n: p.detach() for n, p in model.named_parameters()}
    out.update({n: b.detach() for n, b in model.named_buffers()})
    return out


def load_state_copy(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A deep copy of ``model`` holding ``state`` (the original is not touched)."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in twin.named_parameters():
            if n in state:
                p.copy_(state[n])
        for n, b in twin.named_buffers():
            if n in state:
                b.copy_(state[n])
    return twin


@torch.no_grad()
def permutation_spec(model: nn.Module, example: torch.Tensor, *, warn: bool = True
                     ) -> PermutationSpec:
    """Derive the permutation groups of ``model`` from one forward pass on ``example``.

    The pass runs on a deep copy in eval mode (the model is untouched). ``example`` is a small
    input batch; its own axes and the output's axes are never permuted. With ``warn``, an
    :class:`UnknownOpWarning` names the functions without a rule and the groups they froze.
    """
    twin = copy.deepcopy(model).eval()
    named: dict[int, tuple[str, torch.Tensor]] = {}
    for n, p in twin.named_parameters():
        named[id(p)] = (n, p)
    for n, b in twin.named_buffers():
        named[id(b)] = (n, b)
    tracer = AxisTracer(named)
    calls: list[tuple[str, list[int]]] = []

    def hook(name: str):
        def fn(_m: nn.Module, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                rec = tracer.records.get(id(out))
                if rec is not None and rec[0] is out:
                    calls.append((name, list(rec[1])))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in twin.named_modules() if n]
    try:
        with tracer:
            out = twin(example)
        tracer.fix_all(out)
        if not tensors_in(out):
            raise UnsupportedModelError("the model returned no tensor; cannot derive permutations")
    finally:
        for h in handles:
            h.remove()
    sets = tracer.sets
    persistent = set(twin.state_dict())
    for (name, _axis), var in tracer.members.items():
        if name not in persistent and name in dict(twin.named_buffers()):
            sets.fix(var)  # a non-persistent buffer is a constant of the architecture
    sets.settle()

    leaf_of: dict[int, int] = {}
    axes: list[PermAxis] = []
    members: dict[int, list[tuple[str, int]]] = {}
    order = [n for n, _ in twin.named_parameters()] + [n for n, _ in twin.named_buffers()]
    keys = sorted(tracer.members, key=lambda k: (order.index(k[0]), k[1]))
    for name, axis in keys:
        var = tracer.members[(name, axis)]
        leaves = sets.leaves(var)
        gids = []
        for leaf in leaves:
            if sets.fixed[leaf] or sets.size[leaf] <= 1:
                gids.append(-1)
                continue
            if leaf not in leaf_of:
                leaf_of[leaf] = len(leaf_of)
            gids.append(leaf_of[leaf])
            members.setdefault(leaf_of[leaf], []).append((name, axis))
        if any(g >= 0 for g in gids):
            axes.append(PermAxis(name, axis, tuple(gids), tuple(sets.size[lf] for lf in leaves)))

    roots = {gid: leaf for leaf, gid in leaf_of.items()}
    groups = []
    for gid in range(len(leaf_of)):
        leaf = roots[gid]
        witness, witness_call, seen = None, -1, {}
        for mod, vs in calls:
            seen[mod] = seen.get(mod, -1) + 1
            for d, v in enumerate(vs):
                if sets.find(v) == leaf and sets.find(v) not in sets.children:
                    witness, witness_call = (mod, d), seen[mod]
        groups.append(PermGroup(gid, _group_name(members[gid], axes, gid), sets.size[leaf],
                                tuple(members[gid]), witness, witness_call))
    spec = PermutationSpec(tuple(groups), tuple(axes), tuple(sorted(tracer.unknown)),
                           _frozen(sets, tracer.members, keys))
    message = spec.unknown_message()
    if warn and message is not None:
        warnings.warn(message, UnknownOpWarning, stacklevel=3)  # past no_grad
    return spec


def _frozen(sets: Any, members: dict[tuple[str, int], int], keys: list[tuple[str, int]]
            ) -> tuple[FrozenGroup, ...]:
    """The unit sets kept in place only by functions without a rule, with their members."""
    found: dict[int, list[tuple[str, int]]] = {}
    for key in keys:
        for leaf in sets.leaves(members[key]):
            if sets.frozen_by_unknown(leaf):
                found.setdefault(leaf, []).append(key)
    out = []
    for leaf, keys_ in found.items():
        pick = next(((n, a) for n, a in keys_ if a == 0), keys_[0])
        module = pick[0].rsplit(".", 1)[0] if "." in pick[0] else pick[0]
        name = f"{module}.{'out' if pick[1] == 0 else f'axis{pick[1]}'}"
        out.append(FrozenGroup(name, sets.size[leaf], tuple(sets.frozen_by_unknown(leaf)),
                               tuple(keys_)))
    return tuple(out)


def _group_name(members: list[tuple[str, int]], axes: list[PermAxis], gid: int) -> str:
    """A readable name: the module whose output axis the group is (else the first member)."""
    pick = next(((n, a) for n, a in members if a == 0), members[0])
    ax = next(x for x in axes if (x.name, x.axis) == pick)
    module = pick[0].rsplit(".", 1)[0] if "." in pick[0] else pick[0]
    side = "out" if pick[1] == 0 else f"axis{pick[1]}"
    if len(ax.groups) > 1:
        k = ax.groups.index(gid)
        return f"{module}.{side}[{k} of {ax.sizes}]"
    return f"{module}.{side}"
