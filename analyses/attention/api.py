"""``attention(model, data)``: capture every attention call on a batch and summarise it.

One forward pass (eval mode, no gradients) on a seeded draw of ``samples`` inputs, through the
model view (tuples, dict batches such as ``{"input_ids", "attention_mask", "labels"}``, HF
outputs), inside :func:`inspect_kit.attention.capture_attention`; then the token layout
(:mod:`analyses.attention.layout`: image patches or a token sequence, padding), per layer the
statistics of :mod:`analyses.attention.stats` (per window for Swin,
:mod:`analyses.attention.windows`) and the rollout of :mod:`analyses.attention.rollout` for the
chosen query token. The model is never modified (every hook and patch is undone, mode flags
restored).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.attention import capture_attention, unpatched_bindings
from inspect_kit.data import DataBundle, load_data
from inspect_kit.errors import OptionError, UnsupportedModelError
from inspect_kit.params import check_finite, named_params
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import ModelView
from inspect_kit.view.batches import check_finite as check_batches
from inspect_kit.view.batches import concat
from inspect_kit.zoo import spec_of

from . import layout as layout_mod
from .layers import is_causal, layer, n_windows, rollout_problem, rollout_summary
from .result import AttentionResult
from .rollout import POLICIES, check_options


def _no_attention(model: nn.Module, problems: list[str]) -> UnsupportedModelError:
    """The error when nothing was recorded, with the one hint that applies."""
    msg = (f"no attention was captured from {type(model).__name__}: the kit records "
           "nn.MultiheadAttention, F.scaled_dot_product_attention calls, the softmax at "
           "'attn_drop' (timm's unfused path, Swin windows), '*.attn_fn' submodules and "
           "HuggingFace attention modules")
    bound = unpatched_bindings(model)
    if bound:
        mods = sorted({b.rsplit(".", 1)[0] for b in bound})
        msg += (f"; {', '.join(bound[:3])} bound scaled_dot_product_attention at import time: "
                f"pass patch_modules={mods[:3]}")
    if problems:
        msg += " (" + "; ".join(dict.fromkeys(problems)) + ")"
    return UnsupportedModelError(msg)


@entry_point("attention", renamed={"mode": "model_mode", "max_samples": "samples",
                                   "cls_index": "query"})
def attention(
    model: nn.Module,
    data: Any,
    *,
    index: int = 0,
    query: int | None = None,
    rollout: bool | None = None,
    policy: str | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: float = 0.5,
    samples: int | None = 64,
    split: str = "train",
    seed: int = 0,
    prefix_tokens: int | None = None,
    grid: tuple[int, int] | None = None,
    image_shape: tuple[int, ...] | None = None,
    families: Sequence[str] | None = None,
    patch_modules: Sequence[str | ModuleType] = (),
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> AttentionResult:
    """Attention maps, per-head statistics and (optionally) rollout of ``model`` on ``data``.

    Args:
        model: any model with attention the capture understands (zoo ViT, ``nn.MultiheadAttention``,
            modules calling ``F.scaled_dot_product_attention``, timm-style explicit attention
            and Swin windows, HuggingFace models).
        data: any data form the model view accepts (:mod:`inspect_kit.view.batches`); a seeded
            random draw of ``samples`` inputs of ``split`` (None: all) goes through the model in
            one forward pass.
        index: the input (among the drawn ones) whose maps and rollout map are stored.
        query: the query token whose row the maps and the rollout show: a position, negative
            counting back from each input's last real token (-1 = the last one); default the
            last real token of a causal model, else the first (CLS). Was ``cls_index``.
        rollout: attention rollout (Abnar & Zuidema 2020): True, False, or None = whenever it
            is defined (global self-attention; not for Swin windows).
        policy: ``None`` (softmax attention only) or one of ``raw``, ``clamp``, ``abs``,
            ``renormalise`` (required for non-softmax attention such as Fourier-KArAt).
        head_fusion, discard_ratio, residual: rollout options
            (see :mod:`analyses.attention.rollout`).
        prefix_tokens, grid: token layout of image models (number of CLS-like tokens, patch
            grid (h, w)); read from the model or inferred for image inputs (n - 1 or n a
            perfect square); token sequences never get a grid.
        image_shape: shape of one input as an image (default: the data set's ``image_shape``).
        families, patch_modules: passed to :func:`inspect_kit.attention.capture_attention`.
        model_mode, dtype, device: the model view's options (eval mode by default; restored
            afterwards).
    """
    if rollout is not False:
        check_options(policy, head_fusion, discard_ratio, residual)
    elif policy is not None and policy not in POLICIES:
        raise OptionError(f"policy must be one of {POLICIES}, got {policy!r}")
    if rollout not in (None, True, False):
        raise OptionError(f"rollout must be True, False or None (when defined), got {rollout!r}")
    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle) and image_shape is None:
        image_shape = data.image_shape
    view = ModelView(model, data, split=split, samples=samples, seed=seed,
                     model_mode=model_mode, dtype=dtype, device=device)
    if len(view.batches) > 1:
        view = view.on_batches([concat(view.batches)])
    batch = view.batches[0]
    n = batch.n
    if not 0 <= int(index) < n:
        raise OptionError(f"index={index} is outside the {n} inputs used; pass "
                          f"0 <= index < {n} (or raise samples)")
    index = int(index)
    # NaN/inf inputs or weights give NaN maps (padded rows of a sequence legitimately do too,
    # so the maps themselves are not the test)
    check_batches([batch], f"data of split {split!r}")
    check_finite(named_params(model, trainable_only=False))
    with bar(1, "attention", progress) as pb, torch.no_grad(), view.mode(), \
            capture_attention(model, families=families, patch_modules=patch_modules) as rec:
        view.call(view.state, batch)
        pb.update(1)
    maps = rec.maps  # one forward: every call, in call order
    if not maps:
        raise _no_attention(model, rec.problems)
    glob = [m for m in maps if n_windows(m, n) is None]
    n_keys = (glob or maps)[-1].weights.shape[-1]
    if glob:
        lay = layout_mod.resolve(model, batch, n_keys, prefix_tokens=prefix_tokens, grid=grid,
                                 image_shape=image_shape)
    else:  # only windowed attention (Swin): the layout is per window
        lay = layout_mod.Layout("image", 0, None)
    causal = is_causal(maps, n, lay.mask)
    q = layout_mod.queries(lay, query, causal, n, n_keys)
    layers = [layer(m, n=n, layout=lay, index=index, query=q, n_keys=n_keys) for m in maps]
    ro, why = None, rollout_problem(maps, n)
    if rollout and why is not None:
        raise OptionError(f"rollout=True: {why}; pass rollout=False (or None: when defined)")
    if rollout is not False and why is None:
        ro = rollout_summary(maps, layers, n=n, layout=lay, index=index, query=q, causal=causal,
                             policy=policy, head_fusion=head_fusion,
                             discard_ratio=float(discard_ratio), residual=float(residual))
    image = None
    x, y = batch.x, batch.target
    if lay.kind == "image" and isinstance(x, torch.Tensor) and x.is_floating_point():
        if image_shape is not None and x[index].numel() == int(np.prod(image_shape)):
            image = x[index].reshape(image_shape).double().cpu().numpy()
        elif x.dim() == 3 or (x.dim() == 4 and x.shape[1] in (1, 3, 4)):  # (H, W), (C, H, W)
            image = x[index].double().cpu().numpy()
    spec = spec_of(model)
    label = int(y[index]) if y is not None and not torch.is_floating_point(y) \
        and y.dim() == 1 else None
    info = layout_mod.info(lay, index)
    return AttentionResult(
        layers=tuple(layers), index=index, n_samples=n, prefix_tokens=lay.prefix,
        grid=lay.grid, image=image, label=label,
        model=f"zoo:{spec['name']} {spec['kwargs']}" if spec else type(model).__name__,
        rollout=ro, kind=info["kind"], seq_len=int(n_keys),
        attention_mask=info["attention_mask"], token_ids=info["token_ids"], causal=causal,
        query=int(q[index]),
        provenance={"view": view.options,
                    "rollout": "computed" if ro is not None else (why or "rollout=False")})
