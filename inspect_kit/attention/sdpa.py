"""Modules calling ``torch.nn.functional.scaled_dot_product_attention`` (timm ``Attention`` with
``fused_attn=True``, HuggingFace models with ``attn_implementation="sdpa"``, Swin windows on the
fused path, your own code).

The function is replaced for the context by a wrapper that runs the original (outputs
unchanged, fused kernel kept) and recomputes ``softmax(q k^T * scale + mask)`` honouring
``attn_mask`` (bool: True = keep; float: added), ``is_causal``, ``scale`` and ``enable_gqa``
(:func:`sdpa_weights`). Dropout is never applied to the recorded weights. The call is attributed
to the innermost module running (pre/post hooks on every module for the context).

Functions bound at import time: code that did ``from torch.nn.functional import
scaled_dot_product_attention`` holds its own reference, which patching ``torch.nn.functional``
cannot reach. The wrapper therefore also replaces every module-level name bound to the original
function in the modules that define the model's classes (``type(m).__module__``) and in any
module listed in ``patch_modules``; all are restored on exit. :func:`unpatched_bindings` lists
the modules of the model's packages that still hold the original (what ``patch_modules``
would fix). Calls
through ``torch._C._nn.scaled_dot_product_attention`` or from compiled/scripted code are not seen.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OptionError
from . import windows
from .record import AttentionMap, AttentionRecording, CallCounter, store

SDPA_NAME = "scaled_dot_product_attention"
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
              "enable_gqa")


def sdpa_weights(query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None = None,
                 is_causal: bool = False, scale: float | None = None,
                 enable_gqa: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, weights)`` of ``F.scaled_dot_product_attention`` computed without fusion:

        S = q k^T * scale (+ float mask; -inf where a bool mask is False or above the causal
        diagonal),  A = softmax(S, dim=-1),  scale = 1/sqrt(E) by default.

    A query row with every key masked has no defined weights: NaN.

    >>> q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    >>> sdpa_weights(q, q, is_causal=True)[1][0, 0]
    tensor([[1.0000, 0.0000],
            [0.3302, 0.6698]])
    """
    q = (query.float() if query.dtype in (torch.float16, torch.bfloat16) else query).contiguous()
    k = key.to(q.dtype).contiguous()  # batched matmul on permuted views is ~10x slower
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    scores = (q @ k.transpose(-2, -1)) * s
    L, S = scores.shape[-2], scores.shape[-1]
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask.to(scores.dtype)
    return scores, torch.softmax(scores, dim=-1)


def _modules_to_patch(named: list[tuple[str, nn.Module]],
                      patch_modules: Sequence[str | ModuleType]) -> dict[str, ModuleType]:
    mods: dict[str, ModuleType] = {}
    for _, m in named:
        mod = sys.modules.get(type(m).__module__)
        if mod is not None:
            mods[mod.__name__] = mod
    for pm in patch_modules:
        if isinstance(pm, str):
            if pm not in sys.modules:
                raise OptionError(f"patch_modules: module {pm!r} is not imported; import it "
                                  "first or pass the module object")
            pm = sys.modules[pm]
        mods[pm.__name__] = pm
    mods[F.__name__] = F
    return mods


def unpatched_bindings(model: nn.Module | None = None) -> list[str]:
    """``module.name`` of every imported module (outside torch) whose module-level ``name`` is
    bound to the original ``F.scaled_dot_product_attention`` (call outside a capture); with a
    ``model``, only modules of the top-level packages that define its classes (where a helper
    bound at import time is what ``patch_modules`` fixes).

    >>> unpatched_bindings(torch.nn.Linear(2, 2))
    []
    """
    original = getattr(F.scaled_dot_product_attention, "__wrapped__",
                       F.scaled_dot_product_attention)
    packages = None if model is None else {
        type(m).__module__.split(".")[0] for m in model.modules()} - {"torch"}
    out = []
    for mname, mod in list(sys.modules.items()):
        top = mname.split(".")[0]
        if mod is None or top == "torch" or (packages is not None and top not in packages):
            continue
        with contextlib.suppress(Exception):
            out.extend(f"{mname}.{attr}" for attr, v in list(vars(mod).items())
                       if v is original)
    return out


def patch_sdpa(named: list[tuple[str, nn.Module]], rec: AttentionRecording,
               patch_modules: Sequence[str | ModuleType], skip: set[int], detach: bool,
               device: str | None, next_call: CallCounter, handles: list[Any],
               undo: list[Callable[[], None]]) -> None:
    """Install the recording wrapper (see the module docstring); handles and undos appended."""
    original = F.scaled_dot_product_attention
    by_name = dict(named)
    running: list[tuple[str, str, nn.Module]] = []  # (label, module name, module)

    def push(module: nn.Module, name: str, label: str) -> None:
        running.append((label, name, module))

    def pop(module: nn.Module, args: tuple, out: Any) -> None:
        if running and running[-1][2] is module:
            running.pop()

    for n, m in named:
        label = n or type(m).__name__
        handles.append(m.register_forward_pre_hook(
            lambda mod, a, n=n, label=label: push(mod, n, label)))
        handles.append(m.register_forward_hook(pop, always_call=True))

    def patched(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        a = dict(zip(_SDPA_ARGS, args))
        a.update(kwargs)
        label, name, owner = running[-1] if running else (SDPA_NAME, None, None)
        if owner is not None and id(owner) in skip:
            return out
        with torch.no_grad() if detach else contextlib.nullcontext():
            sc, w = sdpa_weights(a["query"], a["key"], a.get("attn_mask"),
                                 bool(a.get("is_causal", False)), a.get("scale"),
                                 bool(a.get("enable_gqa", False)))
        win = None if name is None else windows.of_module(by_name, name, w.shape[-1])
        rec.add(AttentionMap(label, "sdpa", type(owner).__name__ if owner else SDPA_NAME,
                             store(w, detach, device), store(sc, detach, device), True,
                             *next_call(label), windows=win))
        return out

    patched.__wrapped__ = original  # type: ignore[attr-defined]
    for mod in _modules_to_patch(named, patch_modules).values():
        for attr, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, attr, patched)
                undo.append(lambda mod=mod, attr=attr: setattr(mod, attr, original))
