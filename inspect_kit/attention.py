"""Capture attention weights (and pre-activation scores) from any common attention module.

:func:`capture_attention` is one context manager for four module families. Every capture
returns ``(batch, heads, queries, keys)`` weights per attention call; ``scores`` are the inputs
of the score -> weight map (``q k^T * scale`` plus masks, masked entries ``-inf``) where the kit
can get them exactly, else ``None``.

===========  ===========================================================================  ======
family       how                                                                          scores
===========  ===========================================================================  ======
``attn_fn``  a forward hook (:func:`inspect_kit.hooks.capture`) on every submodule named     yes
             ``attn_fn`` (the zoo's ViT: softmax or Fourier-KArAt); input = scores,
             output = weights. Always executed, no fused kernel can skip it.
``mha``      ``nn.MultiheadAttention`` (also inside ``nn.TransformerEncoderLayer``, which    yes
             calls it with ``need_weights=False``): a pre-hook forces ``need_weights=True,
             average_attn_weights=False`` for the call and a post-hook gives the caller the
             output it asked for (``None`` or the head mean). The MHA fast path is switched
             off for the context (``torch.backends.mha``), so the python path runs; module
             outputs may then differ from the fused kernel at float rounding level (~1e-7).
             Scores are recomputed from the inputs and kept only if ``softmax(scores)``
             reproduces torch's weights to 1e-5 on the first sample (not with
             ``add_bias_kv``/``add_zero_attn``, not under dropout in train mode).
``sdpa``     any module calling ``torch.nn.functional.scaled_dot_product_attention`` (timm      yes
             ``Attention`` with ``fused_attn=True``): the function is replaced for the
             context by a wrapper that runs the original (outputs unchanged, fused kernel
             kept) and recomputes ``softmax(q k^T * scale + mask)`` honouring ``attn_mask``
             (bool: True = keep; float: added), ``is_causal``, ``scale`` and ``enable_gqa``.
             Dropout is never applied to the recorded weights. The call is attributed to the
             innermost module running (pre/post hooks on every module for the context).
``hf``       HuggingFace-style models (duck-typed: ``model.config._attn_implementation``):    no
             eager attention is switched on for the context (``set_attn_implementation``
             when the model has it, else the config attribute) and ``output_attentions=True``
             is passed to the top-level forward; ``outputs.attentions`` is recorded.
===========  ===========================================================================  ======

Functions bound at import time: code that did ``from torch.nn.functional import
scaled_dot_product_attention`` holds its own reference, which patching ``torch.nn.functional``
cannot reach. The capture therefore also replaces every module-level name bound to the original
function in the modules that define the model's classes (``type(m).__module__``) and in any
module listed in ``patch_modules``; all of them are restored on exit. Calls made through
``torch._C._nn.scaled_dot_product_attention`` or from compiled/scripted code are not seen.

Everything is undone on exit, also when the body raises: hook handles removed, the SDPA function
and module bindings restored (identity), the fast-path flag and the attention implementation set
back. References: Abnar & Zuidema 2020 (attention rollout); timm ``Attention``; HuggingFace
``output_attentions``; vit-explain issue #23 (hooks on ``attn_drop`` never fire when fused).

>>> import torch
>>> from torch import nn
>>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
>>> x = torch.randn(3, 5, 8)
>>> with capture_attention(mha) as rec:
...     out, w = mha(x, x, x, need_weights=False)
>>> w is None, rec.names, rec.maps[0].weights.shape
(True, ['MultiheadAttention'], torch.Size([3, 2, 5, 5]))
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import OptionError, UnsupportedModelError
from .hooks import capture

FAMILIES = ("attn_fn", "mha", "sdpa", "hf")
SDPA_NAME = "scaled_dot_product_attention"


@dataclasses.dataclass
class AttentionMap:
    """One attention call: ``weights`` (B, H, Q, K) and, where available, ``scores`` (same shape).

    ``softmax`` is True when the weights are a row softmax of the scores by construction (MHA,
    SDPA, HF eager, a softmax ``attn_fn``): rows are probability vectors. ``call`` counts the
    calls of the same module inside the context (0 for the first forward).
    """

    name: str
    family: str
    module_type: str
    weights: torch.Tensor
    scores: torch.Tensor | None
    softmax: bool
    call: int = 0
    seq: int = 0


class AttentionRecording:
    """What :func:`capture_attention` recorded; ``maps`` are in call order (``seq``)."""

    def __init__(self) -> None:
        self._maps: list[AttentionMap] = []
        self._pending: list[Callable[[], list[AttentionMap]]] = []
        self.problems: list[str] = []

    @property
    def maps(self) -> list[AttentionMap]:
        maps = list(self._maps)
        for source in self._pending:
            maps.extend(source())
        return sorted(maps, key=lambda m: m.seq)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.maps]

    def __len__(self) -> int:
        return len(self.maps)

    def __iter__(self) -> Iterator[AttentionMap]:
        return iter(self.maps)

    def __getitem__(self, key: int | str) -> AttentionMap:
        maps = self.maps
        if isinstance(key, int):
            return maps[key]
        hits = [m for m in maps if m.name == key]
        if not hits:
            raise OptionError(f"no attention recorded for {key!r}; recorded: {self.names}")
        return hits[-1]

    def _freeze(self) -> None:
        self._maps = self.maps
        self._pending = []


def _as_bhqk(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 3:
        return t.unsqueeze(0)
    if t.dim() == 2:
        return t[None, None]
    if t.dim() > 4:
        return t.reshape(-1, t.shape[-3], t.shape[-2], t.shape[-1])
    return t


def _store(t: torch.Tensor | None, detach: bool, device: str | None) -> torch.Tensor | None:
    if t is None:
        return None
    t = t.detach() if detach else t
    return _as_bhqk(t.to(device) if device is not None else t)


def sdpa_weights(query: torch.Tensor, key: torch.Tensor, attn_mask: torch.Tensor | None = None,
                 is_causal: bool = False, scale: float | None = None,
                 enable_gqa: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, weights)`` of ``F.scaled_dot_product_attention`` computed without fusion:

        S = q k^T * scale (+ float mask; -inf where a bool mask is False or above the causal
        diagonal),  A = softmax(S, dim=-1),  scale = 1/sqrt(E) by default.
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


_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
              "enable_gqa")


def _mha_scores(m: nn.MultiheadAttention, a: dict[str, Any]) -> torch.Tensor | None:
    """Pre-softmax scores of ``nn.MultiheadAttention`` recomputed as F.multi_head_attention_forward
    does (in-projection, ``q * sqrt(1/hd)``, masks merged as -inf); None for unsupported set-ups."""
    if m.bias_k is not None or m.add_zero_attn:
        return None
    query, key = a["query"], a["key"]
    if query.dim() == 2:
        query, key = query.unsqueeze(1), key.unsqueeze(1)
    elif m.batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    L, B, E = query.shape
    S, H = key.shape[0], m.num_heads
    hd = E // H
    if m._qkv_same_embed_dim:
        w_q, w_k = m.in_proj_weight[:E], m.in_proj_weight[E:2 * E]
    else:
        w_q, w_k = m.q_proj_weight, m.k_proj_weight
    b = m.in_proj_bias
    b_q, b_k = (None, None) if b is None else (b[:E], b[E:2 * E])
    q = F.linear(query, w_q, b_q).reshape(L, B * H, hd).transpose(0, 1).contiguous()
    k = F.linear(key, w_k, b_k).reshape(S, B * H, hd).transpose(0, 1).contiguous()
    mask = torch.zeros(B * H, L, S, dtype=q.dtype)
    am = a.get("attn_mask")
    if am is not None:
        am = torch.zeros_like(am, dtype=q.dtype).masked_fill(am, float("-inf")) \
            if am.dtype == torch.bool else am.to(q.dtype)
        mask = mask + (am.unsqueeze(0) if am.dim() == 2 else am)
    elif a.get("is_causal"):
        return None
    kpm = a.get("key_padding_mask")
    if kpm is not None:
        kpm = kpm.reshape(-1, S)
        kpm = torch.zeros_like(kpm, dtype=q.dtype).masked_fill(kpm, float("-inf")) \
            if kpm.dtype == torch.bool else kpm.to(q.dtype)
        mask = mask + kpm.reshape(B, 1, 1, S).expand(B, H, 1, S).reshape(B * H, 1, S)
    scores = torch.baddbmm(mask, q * math.sqrt(1.0 / hd), k.transpose(-2, -1))
    return scores.reshape(B, H, L, S)


def _is_softmax_fn(fn: nn.Module) -> bool:
    return isinstance(fn, nn.Softmax) or "softmax" in type(fn).__name__.lower() or bool(
        getattr(fn, "is_softmax", False))


def _hf_config(model: nn.Module) -> Any:
    cfg = getattr(model, "config", None)
    return cfg if cfg is not None and hasattr(cfg, "_attn_implementation") else None


def _families(model: nn.Module, families: Sequence[str] | None) -> set[str]:
    if families is None:
        fams = {"attn_fn", "mha", "sdpa"}
        if _hf_config(model) is not None:
            fams = {"hf", "attn_fn", "mha"}  # eager HF attention calls no SDPA
        return fams
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
    """Record every attention call of ``model`` while the body runs (see the module docstring).

    Args:
        model: any ``nn.Module``.
        families: subset of ``("attn_fn", "mha", "sdpa", "hf")``; ``None`` = all that apply
            (``hf`` replaces ``sdpa`` when the model has a HuggingFace-style config).
        scores: also record pre-activation scores where the family allows it.
        patch_modules: extra modules (objects or dotted names) whose module-level names bound
            to ``F.scaled_dot_product_attention`` are replaced for the context.
        detach / device: how recorded tensors are stored (detached, on CPU by default).
    """
    fams = _families(model, families)
    rec = AttentionRecording()
    named = list(model.named_modules())
    counts: dict[str, int] = {}
    seq = [0]

    def next_call(name: str) -> tuple[int, int]:
        """(call index of this module, global call order) for a new record."""
        counts[name] = counts.get(name, 0) + 1
        seq[0] += 1
        return counts[name] - 1, seq[0]

    handles: list[Any] = []
    restores: list[Callable[[], None]] = []
    with contextlib.ExitStack() as stack:
        try:
            if "attn_fn" in fams:
                fn_names = [n for n, m in named if n.split(".")[-1] == "attn_fn"]
                if fn_names:
                    # the data come from inspect_kit.hooks.capture; a second hook registered
                    # after it stamps each call with the global call order
                    hrec = stack.enter_context(capture(model, fn_names, inputs=scores,
                                                       detach=detach, device=device))
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
                                out.append(AttentionMap(
                                    owner, "attn_fn", type(mod).__name__,
                                    _as_bhqk(call.output), None if sc is None else _as_bhqk(sc),
                                    _is_softmax_fn(mod), c, sq))
                        return out

                    rec._pending.append(from_attn_fn)
            mhas = [(n, m) for n, m in named if isinstance(m, nn.MultiheadAttention)] \
                if "mha" in fams else []
            if mhas:
                prev = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
                restores.append(lambda: torch.backends.mha.set_fastpath_enabled(prev))
                for n, m in mhas:
                    handles.extend(_hook_mha(n or type(m).__name__, m, rec, scores, detach,
                                             device, next_call))
            if "sdpa" in fams:
                _patch_sdpa(named, rec, patch_modules, {id(m) for _, m in mhas},
                            detach, device, next_call, handles, restores)
            if "hf" in fams:
                _hook_hf(model, rec, detach, device, next_call, handles, restores)
            yield rec
        finally:
            for h in handles:
                h.remove()
            for undo in reversed(restores):
                undo()
    rec._freeze()


def _hook_mha(name: str, m: nn.MultiheadAttention, rec: AttentionRecording, scores: bool,
              detach: bool, device: str | None,
              next_call: Callable[[str], tuple[int, int]]) -> list[Any]:
    params = [p for p in inspect.signature(type(m).forward).parameters if p != "self"]
    wanted: list[tuple[bool, bool, torch.Tensor | None]] = []

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = dict(zip(params, args))
        bound.update(kwargs)
        sc = None
        if scores:
            with torch.no_grad():
                sc = _mha_scores(module, bound)
        wanted.append((bool(bound.get("need_weights", True)),
                       bool(bound.get("average_attn_weights", True)), sc))
        new = {k: v for k, v in bound.items() if k not in ("query", "key", "value")}
        new.update(need_weights=True, average_attn_weights=False)
        return (bound["query"], bound["key"], bound["value"]), new

    def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if not wanted:  # forward raised before the pre-hook finished
            return output
        need, avg, sc = wanted.pop()
        if not isinstance(output, tuple) or len(output) != 2 or output[1] is None:
            return output  # the forward raised (always_call) or returned no weights
        out, w = output
        bw = _as_bhqk(w.detach())
        if sc is not None and bool(((torch.softmax(sc[:1], -1) - bw[:1]).abs() > 1e-5).any()):
            sc = None  # dropout in train mode, or a set-up the recomputation does not cover
        rec._maps.append(AttentionMap(name, "mha", type(module).__name__,
                                      _store(w, detach, device), _store(sc, detach, device),
                                      True, *next_call(name)))
        if not need:
            return out, None
        return out, (w.mean(dim=-3) if avg else w)

    return [m.register_forward_pre_hook(pre, with_kwargs=True),
            m.register_forward_hook(post, with_kwargs=True, always_call=True)]


def _patch_sdpa(named: list[tuple[str, nn.Module]], rec: AttentionRecording,
                patch_modules: Sequence[str | ModuleType], skip: set[int], detach: bool, device: str | None,
                next_call: Callable[[str], tuple[int, int]], handles: list[Any],
                undo: list[Callable[[], None]]) -> None:
    original = F.scaled_dot_product_attention
    running: list[tuple[str, nn.Module]] = []

    def push(module: nn.Module, args: tuple, name: str = "") -> None:
        running.append((name, module))

    def pop(module: nn.Module, args: tuple, out: Any) -> None:
        if running and running[-1][1] is module:
            running.pop()

    for n, m in named:
        label = n or type(m).__name__
        handles.append(m.register_forward_pre_hook(
            lambda mod, a, label=label: push(mod, a, label)))
        handles.append(m.register_forward_hook(pop, always_call=True))

    def patched(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        a = dict(zip(_SDPA_ARGS, args))
        a.update(kwargs)
        name, owner = running[-1] if running else (SDPA_NAME, None)
        if owner is not None and id(owner) in skip:
            return out
        with torch.no_grad() if detach else contextlib.nullcontext():
            sc, w = sdpa_weights(a["query"], a["key"], a.get("attn_mask"),
                                 bool(a.get("is_causal", False)), a.get("scale"),
                                 bool(a.get("enable_gqa", False)))
        rec._maps.append(AttentionMap(name, "sdpa", type(owner).__name__ if owner else SDPA_NAME,
                                      _store(w, detach, device), _store(sc, detach, device),
                                      True, *next_call(name)))
        return out

    patched.__wrapped__ = original  # type: ignore[attr-defined]
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
    for mod in mods.values():
        for attr, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, attr, patched)
                undo.append(lambda mod=mod, attr=attr: setattr(mod, attr, original))


def _hook_hf(model: nn.Module, rec: AttentionRecording, detach: bool, device: str | None,
             next_call: Callable[[str], tuple[int, int]], handles: list[Any],
             undo: list[Callable[[], None]]) -> None:
    cfg = _hf_config(model)
    if cfg is None:
        raise UnsupportedModelError(
            "families includes 'hf' but the model has no config._attn_implementation; "
            "drop 'hf' or pass a HuggingFace model")
    impl = cfg._attn_implementation
    if impl != "eager":
        setter = getattr(model, "set_attn_implementation", None)
        if callable(setter):
            setter("eager")
            undo.append(lambda: setter(impl))
        else:
            cfg._attn_implementation = "eager"
            undo.append(lambda: setattr(cfg, "_attn_implementation", impl))
    asked: list[bool] = []

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        asked.append(bool(kwargs.get("output_attentions")))
        return args, {**kwargs, "output_attentions": True}

    def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        user_asked = asked.pop() if asked else True
        if output is None:
            return output
        atts = getattr(output, "attentions", None)
        if atts is None and isinstance(output, dict):
            atts = output.get("attentions")
        if atts is None:
            rec.problems.append("the HuggingFace-style model returned no attentions with "
                                "eager attention and output_attentions=True")
            return output
        name = "attentions"
        for i, a in enumerate(atts):
            if a is None:
                continue
            rec._maps.append(AttentionMap(f"{name}.{i}", "hf", type(module).__name__,
                                          _store(a, detach, device), None, True,
                                          *next_call(f"{name}.{i}")))
        if not user_asked and hasattr(output, "attentions"):
            with contextlib.suppress(Exception):
                output.attentions = None
        return output

    handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
    handles.append(model.register_forward_hook(post, with_kwargs=True, always_call=True))
