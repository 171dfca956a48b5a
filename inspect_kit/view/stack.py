"""A low-overhead functional forward for plain layer stacks (``nn.Sequential``, the zoo MLP).

``torch.func.functional_call`` re-binds every parameter on every call, which costs as much as the
forward itself for a small MLP on a few hundred samples. For a model that is just a stack of
layers, the same function is computed here step by step from a parameter dict: ``nn.Linear``
steps call ``F.linear(h, p[w], p[b])`` (what ``nn.Linear.forward`` does), parameter-free steps
call the module itself, any other step goes through ``functional_call`` on that one submodule.
Nothing is written to the model. :func:`stack_plan` returns a plan only after checking it against
``functional_call`` of the whole model at a moved point; otherwise the caller uses
``functional_call``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class StackPlan:
    """Steps ``(kind, module, weight_key, bias_key, local_names)`` of a layer stack."""

    def __init__(self, prefix: str, seq: nn.Sequential, flatten: bool) -> None:
        self.flatten = flatten
        self.steps: list[tuple[str, nn.Module, str, str | None, dict[str, str]]] = []
        for name, mod in seq.named_children():
            full = f"{prefix}{name}"
            own = {n: f"{full}.{n}" for n, _ in mod.named_parameters()}
            own.update({n: f"{full}.{n}" for n, _ in mod.named_buffers()})
            if type(mod) is nn.Linear:
                self.steps.append(("linear", mod, f"{full}.weight",
                                   f"{full}.bias" if mod.bias is not None else None, {}))
            elif type(mod) is nn.ReLU:
                self.steps.append(("relu", mod, "", None, {}))
            elif not own:
                self.steps.append(("free", mod, "", None, {}))
            else:
                self.steps.append(("functional", mod, "", None, own))

    def first_linear_key(self) -> str | None:
        """Weight key of step 0 when it is a Linear (the first-layer trick's layer)."""
        kind, _, wk, _, _ = self.steps[0]
        return wk if kind == "linear" else None

    def forward(self, p: Mapping[str, torch.Tensor], x: torch.Tensor,
                h0: torch.Tensor | None = None, own_h0: bool = False) -> torch.Tensor:
        """Output at parameters ``p`` (all names); ``h0`` replaces the first Linear's output.

        ``own_h0=True`` lets the plan overwrite ``h0`` in place (a temporary of the caller).
        """
        if h0 is not None:
            h, steps = h0, self.steps[1:]
        else:
            h = x.reshape(len(x), -1) if self.flatten else x
            steps = self.steps
        fresh = h0 is not None and own_h0
        for kind, mod, wk, bk, own in steps:
            if kind == "linear":
                h = F.linear(h, p[wk], p[bk] if bk is not None else None)
                fresh = True
            elif kind == "relu":
                # in place only on a tensor this plan made (never the input or a caller's h0)
                h = torch.relu_(h) if fresh else torch.relu(h)
            elif kind == "free":
                h = mod(h)
            else:
                h = functional_call(mod, {n: p[f] for n, f in own.items() if f in p}, (h,))
            if kind not in ("linear", "relu"):
                fresh = False
        return h


def stack_plan(model: nn.Module, params: Mapping[str, torch.Tensor],
               moved: Mapping[str, torch.Tensor], x: torch.Tensor) -> StackPlan | None:
    """A verified :class:`StackPlan` for ``model``, or None when it is not a plain stack.

    Recognised: ``nn.Sequential`` models and the zoo MLP (``x.reshape(len(x), -1)`` then
    ``self.layers``). The plan must reproduce ``functional_call`` at ``params`` and ``moved``
    (full states: every parameter and buffer).
    """
    if type(model) is nn.Sequential:
        plan = StackPlan("", model, flatten=False)
    elif (type(model).__name__ == "MLP" and type(model).__module__ == "inspect_kit.zoo.mlp"
          and isinstance(getattr(model, "layers", None), nn.Sequential)):
        plan = StackPlan("layers.", model.layers, flatten=True)
    else:
        return None
    if not plan.steps:
        return None
    try:
        for p in (params, moved):
            want = functional_call(model, dict(p), (x,))
            got = plan.forward(p, x)
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5, atol=1e-6):
                return None
    except Exception:  # anything unexpected: use the general path
        return None
    return plan
