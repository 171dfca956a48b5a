"""``nn.MultiheadAttention`` (also inside ``nn.TransformerEncoderLayer``, which calls it with
``need_weights=False``).

A pre-hook forces ``need_weights=True, average_attn_weights=False`` for the call and a post-hook
gives the caller the output it asked for (``None`` or the head mean). The caller switches the MHA
fast path off for the context (``torch.backends.mha``), so the Python path runs; module outputs
may then differ from the fused kernel at float rounding level (~1e-7). Scores are recomputed
from the inputs as ``F.multi_head_attention_forward`` does and kept only if ``softmax(scores)``
reproduces torch's weights to 1e-5 on the first sample (not with ``add_bias_kv`` /
``add_zero_attn``, not under dropout in train mode).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .record import AttentionMap, AttentionRecording, CallCounter, as_bhqk, store


def mha_scores(m: nn.MultiheadAttention, a: dict[str, Any]) -> torch.Tensor | None:
    """Pre-softmax scores (B, H, L, S) of ``nn.MultiheadAttention``: in-projection,
    ``q * sqrt(1/hd)``, masks merged as -inf; None for set-ups this does not cover."""
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


def hook_mha(name: str, m: nn.MultiheadAttention, rec: AttentionRecording, scores: bool,
             detach: bool, device: str | None, next_call: CallCounter) -> list[Any]:
    """Register the pre/post hooks on one MHA module; returns the handles."""
    params = [p for p in inspect.signature(type(m).forward).parameters if p != "self"]
    wanted: list[tuple[bool, bool, torch.Tensor | None]] = []

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = dict(zip(params, args))
        bound.update(kwargs)
        sc = None
        if scores:
            with torch.no_grad():
                sc = mha_scores(module, bound)
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
        bw = as_bhqk(w.detach())
        if sc is not None and bool(((torch.softmax(sc[:1], -1) - bw[:1]).abs() > 1e-5).any()):
            sc = None  # dropout in train mode, or a set-up the recomputation does not cover
        rec.add(AttentionMap(name, "mha", type(module).__name__, store(w, detach, device),
                             store(sc, detach, device), True, *next_call(name)))
        if not need:
            return out, None
        return out, (w.mean(dim=-3) if avg else w)

    return [m.register_forward_pre_hook(pre, with_kwargs=True),
            m.register_forward_hook(post, with_kwargs=True, always_call=True)]
