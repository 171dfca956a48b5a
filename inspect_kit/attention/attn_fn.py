"""Modules with an ``attn_fn`` submodule (the zoo's ViT: softmax or Fourier-KArAt): a forward
hook (:func:`inspect_kit.hooks.capture`) on every submodule named ``attn_fn``; its input is the
scores, its output the weights. Always executed: no fused kernel can skip it."""

from __future__ import annotations

import contextlib
from typing import Any

from torch import nn

from ..hooks import capture
from .record import AttentionMap, AttentionRecording, CallCounter, as_bhqk

NAME = "attn_fn"


def is_softmax_fn(fn: nn.Module) -> bool:
    """Whether an ``attn_fn`` module is a row softmax (by type, name or ``is_softmax``)."""
    return isinstance(fn, nn.Softmax) or "softmax" in type(fn).__name__.lower() or bool(
        getattr(fn, "is_softmax", False))


def hook_attn_fn(stack: contextlib.ExitStack, model: nn.Module, named: list[tuple[str, nn.Module]],
                 rec: AttentionRecording, scores: bool, detach: bool, device: str | None,
                 next_call: CallCounter, handles: list[Any]) -> None:
    """Record every ``*.attn_fn`` call into ``rec`` (lazily, when the maps are read)."""
    fn_names = [n for n, _ in named if n.split(".")[-1] == NAME]
    if not fn_names:
        return
    # the data come from inspect_kit.hooks.capture; a second hook registered after it stamps
    # each call with the global call order
    hrec = stack.enter_context(capture(model, fn_names, inputs=scores, detach=detach,
                                       device=device))
    fn_mods = dict(named)
    stamps: dict[str, list[int]] = {n: [] for n in fn_names}
    for n in fn_names:
        handles.append(fn_mods[n].register_forward_hook(
            lambda mod, a, o, n=n: stamps[n].append(next_call(n)[1])))

    def from_attn_fn() -> list[AttentionMap]:
        out = []
        for n in fn_names:
            mod = fn_mods[n]
            owner = n.rsplit(".", 1)[0] if "." in n else n
            for c, (call, sq) in enumerate(zip(hrec[n], stamps[n])):
                sc = call.inputs[0] if call.inputs else None
                out.append(AttentionMap(owner, NAME, type(mod).__name__, as_bhqk(call.output),
                                        None if sc is None else as_bhqk(sc),
                                        is_softmax_fn(mod), c, sq))
        return out

    rec._pending.append(from_attn_fn)
