""":func:`capture_attention`: one context manager over every family of
:mod:`inspect_kit.attention`; everything it installs is undone on exit, also when the body
raises (hook handles removed, the SDPA function and module bindings restored by identity, the
MHA fast-path flag and the HF attention implementation set back)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import OptionError
from .attn_fn import hook_attn_fn
from .explicit import hook_attn_drop
from .hf import hf_config, hook_hf
from .mha import hook_mha
from .record import AttentionRecording, CallCounter
from .sdpa import patch_sdpa

FAMILIES = ("attn_fn", "mha", "sdpa", "attn_drop", "hf")


def resolve_families(model: nn.Module, families: Sequence[str] | None) -> set[str]:
    """``None`` -> every family that applies (``hf`` only for HuggingFace-style models)."""
    if families is None:
        fams = {"attn_fn", "mha", "sdpa", "attn_drop"}
        if hf_config(model) is not None:
            fams.add("hf")
        return fams
    if isinstance(families, str):
        families = [families]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise OptionError(f"families contains {bad}; allowed: {list(FAMILIES)}")
    return set(families)


@contextlib.contextmanager
def capture_attention(
    model: nn.Module,
    *,
    families: Sequence[str] | None = None,
    scores: bool = True,
    patch_modules: Sequence[str | ModuleType] = (),
    detach: bool = True,
    device: str | None = "cpu",
) -> Iterator[AttentionRecording]:
    """Record every attention call of ``model`` while the body runs (see
    :mod:`inspect_kit.attention`).

    Args:
        model: any ``nn.Module``.
        families: subset of ``("attn_fn", "mha", "sdpa", "attn_drop", "hf")``; ``None`` = all
            that apply (``hf`` when the model has a HuggingFace-style config).
        scores: also record pre-activation scores where the family allows it.
        patch_modules: extra modules (objects or dotted names) whose module-level names bound
            to ``F.scaled_dot_product_attention`` are replaced for the context.
        detach / device: how recorded tensors are stored (detached, on CPU by default).
    """
    fams = resolve_families(model, families)
    rec = AttentionRecording()
    named = list(model.named_modules())
    next_call = CallCounter()
    handles: list[Any] = []
    restores: list[Callable[[], None]] = []
    with contextlib.ExitStack() as stack:
        try:
            if "attn_fn" in fams:
                hook_attn_fn(stack, model, named, rec, scores, detach, device, next_call,
                             handles)
            hf_ids: set[int] = set()
            if "hf" in fams:
                hf_ids = hook_hf(model, rec, "sdpa" in fams, detach, device, next_call,
                                 handles, restores)
            mhas = [(n, m) for n, m in named if isinstance(m, nn.MultiheadAttention)] \
                if "mha" in fams else []
            if mhas:
                prev = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
                restores.append(lambda: torch.backends.mha.set_fastpath_enabled(prev))
                for n, m in mhas:
                    handles.extend(hook_mha(n or type(m).__name__, m, rec, scores, detach,
                                            device, next_call))
            mha_ids = {id(m) for _, m in mhas}
            if "attn_drop" in fams:
                handles.extend(hook_attn_drop(named, rec, hf_ids | mha_ids, scores, detach,
                                              device, next_call))
            if "sdpa" in fams:
                patch_sdpa(named, rec, patch_modules, mha_ids, detach, device, next_call,
                           handles, restores)
            yield rec
        finally:
            for h in handles:
                h.remove()
            for undo in reversed(restores):
                undo()
    rec._freeze()
