"""Capture attention weights (and pre-activation scores) from any common attention module.

:func:`capture_attention` is one context manager for five module families. Every capture
returns ``(batch, heads, queries, keys)`` weights per attention call; ``scores`` are the inputs
of the score -> weight map (``q k^T * scale`` plus masks and biases, masked entries ``-inf``)
where the kit can get them exactly, else ``None``.

=============  ==========================================================================  ======
family         how (one module each)                                                       scores
=============  ==========================================================================  ======
``attn_fn``    forward hook on every ``*.attn_fn`` submodule (zoo ViT: softmax or         yes
               Fourier-KArAt); input = scores, output = weights (:mod:`.attn_fn`)
``mha``        ``nn.MultiheadAttention``, also inside ``nn.TransformerEncoderLayer``:      yes
               weights forced on for the call, the caller gets what it asked (:mod:`.mha`)
``sdpa``       ``F.scaled_dot_product_attention`` wrapped for the context: the original    yes
               runs, ``softmax(q k^T * scale + mask)`` is recomputed (:mod:`.sdpa`): timm
               ``fused_attn=True``, HF ``sdpa``, your own code
``attn_drop``  timm-style explicit attention: the softmax at the input of ``attn_drop``    Swin
               (``fused_attn=False``; Swin, XCiT, Visformer by default) (:mod:`.explicit`)
``hf``         HuggingFace models: hooks on the modules their ``_can_record_outputs``      no
               names; eager weights as ``output_attentions`` reports them (:mod:`.hf`)
=============  ==========================================================================  ======

Windowed attention (Swin, Liu et al. 2021) is recorded per window, (B * windows, H, N, N), with
its window layout (:mod:`.windows`). Everything is undone on exit, also when the body raises.
References: Abnar & Zuidema 2020 (attention rollout, in :mod:`analyses.attention.rollout`); timm
``Attention`` / ``WindowAttention``; HuggingFace ``output_attentions``; vit-explain issue #23
(hooks on ``attn_drop`` never fire when timm runs the fused kernel).

>>> import torch
>>> from torch import nn
>>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
>>> x = torch.randn(3, 5, 8)
>>> with capture_attention(mha) as rec:
...     out, w = mha(x, x, x, need_weights=False)
>>> w is None, rec.names, rec.maps[0].weights.shape
(True, ['MultiheadAttention'], torch.Size([3, 2, 5, 5]))
"""

from .capture import FAMILIES, capture_attention, resolve_families
from .explicit import is_row_softmax
from .record import AttentionMap, AttentionRecording, as_bhqk
from .sdpa import SDPA_NAME, sdpa_weights, unpatched_bindings

__all__ = ["FAMILIES", "SDPA_NAME", "AttentionMap", "AttentionRecording", "as_bhqk",
           "capture_attention", "is_row_softmax", "resolve_families", "sdpa_weights",
           "unpatched_bindings"]
