"""timm-style explicit ("unfused") attention: the softmax output at the input of ``attn_drop``.

timm's ``Attention`` with ``fused_attn=False`` (``TIMM_FUSED_ATTN=0``, ``set_fused_attn(False)``
or ``blk.attn.fused_attn = False``), and Swin's ``WindowAttention``, XCiT's ``XCA``, Visformer's
``Attention`` and others at their defaults, compute

    attn = (q * scale) @ k^T  (+ bias, + mask);  attn = attn.softmax(-1);  attn = attn_drop(attn)

so no fused kernel runs and nothing calls ``scaled_dot_product_attention``. A forward pre-hook on
every submodule named ``attn_drop`` records its input: the attention weights before dropout,
(B, H, Q, K) (for Swin (B * windows, H, N, N), with the window layout of
:mod:`inspect_kit.attention.windows`). The input is recorded only when it is a row softmax
(entries >= 0, finite rows summing to 1 within 1e-4, 1e-2 in half precision), so a dropout
applied to something else is never mistaken for attention (it is listed in ``problems``). When
the module also has an ``nn.Softmax`` child named ``softmax`` (Swin), its input is recorded as
the scores (``q k^T * scale`` + relative position bias + shift mask). On the fused path the same
module calls ``scaled_dot_product_attention`` instead and :mod:`.sdpa` records it; the two paths
give the same maps (up to rounding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import windows
from .record import AttentionMap, AttentionRecording, CallCounter, store

DROP_NAME = "attn_drop"


def is_row_softmax(t: torch.Tensor) -> bool:
    """Entries >= 0 and every finite row summing to 1 (1e-4; 1e-2 for float16/bfloat16).

    >>> is_row_softmax(torch.softmax(torch.randn(2, 3, 4, 5), -1)), is_row_softmax(torch.ones(2, 3))
    (True, False)
    """
    if not t.is_floating_point() or t.dim() < 2:
        return False
    tol = 1e-2 if t.dtype in (torch.float16, torch.bfloat16) else 1e-4
    x = t.detach().float()
    finite = torch.isfinite(x).all(-1)
    if not bool(finite.any()):
        return False
    rows = x[finite]
    return bool((rows >= 0).all()) and bool(((rows.sum(-1) - 1).abs() <= tol).all())


def hook_attn_drop(named: list[tuple[str, nn.Module]], rec: AttentionRecording, skip: set[int],
                   scores: bool, detach: bool, device: str | None,
                   next_call: CallCounter) -> list[Any]:
    """Hooks on every ``*.attn_drop`` whose owner is not in ``skip``; returns the handles."""
    by_name = dict(named)
    handles: list[Any] = []
    for name, owner in named:
        drop = getattr(owner, DROP_NAME, None)
        if not isinstance(drop, nn.Module) or id(owner) in skip:
            continue
        label = name or type(owner).__name__
        pending: list[torch.Tensor] = []
        soft = getattr(owner, "softmax", None)
        if scores and isinstance(soft, nn.Softmax):
            handles.append(soft.register_forward_pre_hook(
                lambda mod, a, pending=pending: pending.append(a[0].detach())))

        def pre(mod: nn.Module, a: tuple, name: str = name, label: str = label,
                owner: nn.Module = owner, pending: list[torch.Tensor] = pending) -> None:
            sc = pending.pop() if pending else None
            pending.clear()
            w = a[0] if a else None
            if not isinstance(w, torch.Tensor) or not is_row_softmax(w):
                rec.problems.append(f"{label}.{DROP_NAME} was called on a tensor that is not a "
                                    "row softmax; it was not recorded as attention")
                return
            if sc is not None and sc.shape != w.shape:
                sc = None
            win = windows.of_module(by_name, name, w.shape[-1])
            rec.add(AttentionMap(label, DROP_NAME, type(owner).__name__,
                                 store(w, detach, device), store(sc, detach, device), True,
                                 *next_call(label), windows=win))

        handles.append(drop.register_forward_pre_hook(pre))
    return handles
