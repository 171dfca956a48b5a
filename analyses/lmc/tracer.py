"""Which tensor axes share a hidden-unit permutation, found by watching one forward pass.

A ``TorchFunctionMode`` sees every torch function the model calls, with concrete tensors (so
``len(x)``, shape checks and Python control flow are no obstacle, unlike ``torch.fx`` symbolic
tracing, which fails on the zoo KAN's ``x.reshape(len(x), -1)``). Each call propagates axis
variables (:mod:`analyses.lmc.axes`) by a rule for its kind:

* elementwise maps and broadcasting binary ops unify the aligned axes;
* ``linear`` joins the input's last axis to ``weight[:, i]`` and starts a new variable for the
  output axis, joined to ``weight[j, :]`` and ``bias``; ``einsum``/``matmul`` join contracted and
  batch axes; ``layer_norm``/``batch_norm`` join their affine tensors and running statistics;
* reductions (``sum``, ``mean``) remove an axis; ``softmax`` keeps it (permutation-equivariant);
* ``reshape`` keeps one-to-one axes, splits an axis into child variables (attention heads) or
  merges axes into a composite one;
* indexing a position, slicing, in-place writes, ``tolist``, ``cat`` along an axis, and every
  function without a rule *fix* the axes they touch (their order matters), as do the model's
  inputs and outputs.

What is left unfixed is a permutation symmetry of the network: permuting those axes of every
parameter and buffer consistently leaves the function unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .axes import ORDER, UNKNOWN, AxisSets
from .rules import rule_for, tensors_in

ORDER_EXPORT = set("__setitem__ tolist numpy __iter__ index_put_ index_put index_copy_ "
                   "scatter_ scatter put_".split())
NO_TENSOR = set("size dim numel shape dtype device is_floating_point __len__ item tolist "
                "element_size stride is_contiguous data_ptr __bool__ __int__ __float__ "
                "requires_grad grad_fn is_leaf nelement ndim ndimension __format__ __repr__ "
                "__hash__ __index__ layout is_cuda".split())


def _name(func: Any) -> str:
    name = getattr(func, "__name__", "") or ""
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name


class AxisTracer(TorchFunctionMode):
    """Records axis variables of every tensor produced inside the ``with`` block."""

    def __init__(self, named: dict[int, tuple[str, torch.Tensor]]) -> None:
        super().__init__()
        self.sets = AxisSets()
        self.named = named  # id(param or buffer) -> (name, tensor)
        self.records: dict[int, tuple[torch.Tensor, list[int]]] = {}
        self.members: dict[tuple[str, int], int] = {}  # (tensor name, axis) -> variable
        self.unknown: set[str] = set()

    # -- variables of tensors ---------------------------------------------------------------
    def vars(self, t: torch.Tensor) -> list[int]:
        rec = self.records.get(id(t))
        if rec is not None and rec[0] is t and len(rec[1]) == t.dim():
            return rec[1]
        if id(t) in self.named and self.named[id(t)][1] is t:
            name = self.named[id(t)][0]
            vs = []
            for a in range(t.dim()):
                key = (name, a)
                if key not in self.members:
                    self.members[key] = self.sets.new(t.shape[a])
                vs.append(self.members[key])
        else:  # a tensor from outside (model input, constant): its order matters
            vs = [self.sets.new(s, fixed=True) for s in t.shape]
        self.records[id(t)] = (t, vs)
        return vs

    def set(self, t: Any, vs: list[int]) -> None:
        if isinstance(t, torch.Tensor):
            assert len(vs) == t.dim()
            self.records[id(t)] = (t, list(vs))

    def fresh(self, t: torch.Tensor, fixed: bool = True, reason: str = ORDER) -> list[int]:
        return [self.sets.new(s, fixed=fixed, reason=reason) for s in t.shape]

    def fix_all(self, obj: Any, reason: str = ORDER) -> None:
        for t in tensors_in(obj):
            for v in self.vars(t):
                self.sets.fix(v, reason)

    # -- the mode ----------------------------------------------------------------------------
    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _name(func)
        if name in ORDER_EXPORT:  # positions or values leave the tensor world: keep them in place
            self.fix_all((args, kwargs))
            return out
        if name in NO_TENSOR or not tensors_in(out):
            return out
        rule = rule_for(name)
        try:
            if rule is None:
                raise NotImplementedError(name)
            rule(self, name, args, kwargs, out)
        except Exception:  # no rule or an unexpected signature: keep every touched axis in place
            self.unknown.add(name)
            self.fix_all((args, kwargs), UNKNOWN + name)
            for t in tensors_in(out):
                self.set(t, self.fresh(t, reason=UNKNOWN + name))
        return out


__all__ = ["AxisTracer", "tensors_in"]
