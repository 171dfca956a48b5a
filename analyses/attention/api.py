"""``attention(model, data)``: capture every attention call on a batch and summarise it.

One forward pass (eval mode, no gradients) on a seeded draw of ``samples`` inputs, inside
:func:`inspect_kit.attention.capture_attention`; then per layer the statistics of
:mod:`analyses.attention.stats` and, on request, the rollout of :mod:`analyses.attention.rollout`.
The model is never modified (every hook and patch is undone, mode flags restored).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.attention import AttentionMap, capture_attention
from inspect_kit.data import DataBundle, load_data
from inspect_kit.errors import NonFiniteError, OptionError, UnsupportedModelError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import ModelView
from inspect_kit.view.batches import concat
from inspect_kit.zoo import spec_of

from . import stats
from .result import AttentionResult, LayerAttention
from .rollout import POLICIES, check_options
from .rollout import rollout as rollout_fn


def _model_layout(model: nn.Module) -> tuple[int | None, tuple[int, int] | None]:
    prefix = getattr(model, "num_prefix_tokens", None)
    grid = getattr(model, "grid_shape", None)
    if grid is None:
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is not None and prefix is None and hasattr(model, "cls_token"):
        prefix = 1
    return prefix, (tuple(int(g) for g in grid) if grid is not None else None)


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().double().cpu().numpy()


def _layer(m: AttentionMap, index: int, prefix: int, grid: tuple[int, int] | None,
           cls_index: int) -> LayerAttention:
    a = m.weights.float()
    square = a.shape[-1] == a.shape[-2]
    dist = stats.attention_distance(a, grid, prefix) if grid is not None and square else None
    cls = None
    if square and 0 <= cls_index < a.shape[-2] and a.shape[-1] > prefix:
        cls = stats.cls_maps(a[index:index + 1], prefix, cls_index, grid)[0]
    sc = m.scores
    return LayerAttention(
        name=m.name, family=m.family, module_type=m.module_type, shape=tuple(a.shape),
        softmax=m.softmax, entropy=_np(stats.entropy(a)), distance=_np(dist),
        negative_mass=_np(stats.negative_mass(a)),
        negative_fraction=_np(stats.negative_fraction(a)),
        row_sum_deviation=_np(stats.row_sum_deviation(a)),
        score_range=_np(stats.score_range(sc)) if sc is not None else None,
        cls_attention=_np(cls), spectrum=_np(stats.spectrum_summary(a)),
        score_spectrum=_np(stats.spectrum_summary(sc)) if sc is not None else None)


@entry_point("attention", renamed={"mode": "model_mode", "max_samples": "samples"})
def attention(
    model: nn.Module,
    data: Any,
    *,
    index: int = 0,
    rollout: bool = True,
    policy: str | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: float = 0.5,
    samples: int | None = 64,
    split: str = "train",
    seed: int = 0,
    prefix_tokens: int | None = None,
    grid: tuple[int, int] | None = None,
    cls_index: int = 0,
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
            modules calling ``F.scaled_dot_product_attention``, HuggingFace-style models).
        data: any data form the model view accepts (:mod:`inspect_kit.view.batches`); a seeded
            random draw of ``samples`` inputs of ``split`` (None: all) goes through the model in
            one forward pass.
        index: the input (among the drawn ones) whose CLS maps and rollout map are stored.
        rollout: compute attention rollout (Abnar & Zuidema 2020).
        policy: ``None`` (softmax attention only) or one of ``raw``, ``clamp``, ``abs``,
            ``renormalise`` (required for non-softmax attention such as Fourier-KArAt).
        head_fusion, discard_ratio, residual: rollout options
            (see :mod:`analyses.attention.rollout`).
        prefix_tokens, grid: token layout (number of CLS-like tokens, patch grid (h, w));
            read from the model (``grid_shape``, ``num_prefix_tokens``) or inferred from the
            token count (n - 1 or n a perfect square).
        cls_index: the query row used for CLS maps and the rollout map.
        image_shape: shape of one input as an image (default: the data set's ``image_shape``).
        families, patch_modules: passed to :func:`inspect_kit.attention.capture_attention`.
        model_mode, dtype, device: the model view's options (eval mode by default; restored
            afterwards).
    """
    if rollout:
        check_options(policy, head_fusion, discard_ratio, residual)
    elif policy is not None and policy not in POLICIES:
        raise OptionError(f"policy must be one of {POLICIES}, got {policy!r}")
    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle) and image_shape is None:
        image_shape = data.image_shape
    view = ModelView(model, data, split=split, samples=samples, seed=seed,
                     model_mode=model_mode, dtype=dtype, device=device)
    if len(view.batches) > 1:
        view = view.on_batches([concat(view.batches)])
    batch = view.batches[0]
    if not 0 <= int(index) < batch.n:
        raise OptionError(f"index={index} is outside the {batch.n} inputs used; pass "
                          f"0 <= index < {batch.n} (or raise samples)")
    with bar(1, "attention", progress) as pb, torch.no_grad(), view.mode(), \
            capture_attention(model, families=families, patch_modules=patch_modules) as rec:
        view.call(view.state, batch)
        pb.update(1)
    maps = rec.maps  # one forward: every call, in call order
    if not maps:
        hint = "; ".join(rec.problems)
        raise UnsupportedModelError(
            f"no attention was captured from {type(model).__name__}: the kit understands "
            "nn.MultiheadAttention, F.scaled_dot_product_attention callers, '*.attn_fn' "
            "submodules and HuggingFace-style models; if your code bound "
            "scaled_dot_product_attention at import time pass patch_modules=[its module]"
            + (f" ({hint})" if hint else ""))
    for m in maps:
        bad = ~torch.isfinite(m.weights)
        if bool(bad.any()):
            first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0])
            raise NonFiniteError(f"the attention weights of {m.name} are NaN or inf for input "
                                 f"{first} of split {split!r}; check the data and the weights "
                                 "for NaN/inf")
    m_prefix, m_grid = _model_layout(model)
    n_keys = maps[-1].weights.shape[-1]
    prefix, lay_grid = stats.infer_layout(
        n_keys, prefix_tokens if prefix_tokens is not None else m_prefix,
        grid if grid is not None else m_grid)
    if grid is not None and lay_grid is None:
        raise OptionError(f"grid={tuple(grid)} with {prefix} prefix tokens does not fit the "
                          f"{n_keys} tokens of the attention; fix grid or prefix_tokens")
    layers = []
    for m in maps:
        k = m.weights.shape[-1]
        g = lay_grid if k == n_keys else stats.infer_layout(k)[1]
        p = prefix if k == n_keys else stats.infer_layout(k)[0]
        layers.append(_layer(m, int(index), p, g, cls_index))
    ro = None
    if rollout:
        ro = _rollout(maps, layers, int(index), prefix, lay_grid, policy, head_fusion,
                      float(discard_ratio), float(residual), cls_index)
    image = None
    x, y = batch.x, batch.target
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        if image_shape is not None and x[index].numel() == int(np.prod(image_shape)):
            image = x[index].reshape(image_shape).double().cpu().numpy()
        elif x.dim() in (3, 4):
            image = x[index].double().cpu().numpy()
    spec = spec_of(model)
    label = int(y[index]) if y is not None and not torch.is_floating_point(y) \
        and y.dim() == 1 else None
    return AttentionResult(
        layers=tuple(layers), index=int(index), n_samples=batch.n, prefix_tokens=prefix,
        grid=lay_grid, image=image, label=label,
        model=f"zoo:{spec['name']} {spec['kwargs']}" if spec else type(model).__name__,
        rollout=ro, provenance={"view": view.options})


def _rollout(maps: list[AttentionMap], layers: list[LayerAttention], index: int, prefix: int,
             grid: tuple[int, int] | None, policy: str | None, head_fusion: str,
             discard_ratio: float, residual: float, cls_index: int) -> dict[str, Any]:
    if policy is None and not all(m.softmax for m in maps):
        bad = [lay for lay in layers if not lay.softmax]
        raise OptionError(
            f"layers {[lay.name for lay in bad]} are not softmax attention (negative mass up to "
            f"{max(float(np.nanmax(lay.negative_mass)) for lay in bad):.3g}, mean |row sum - 1| "
            f"up to {max(float(np.nanmax(lay.row_sum_deviation)) for lay in bad):.3g}); rollout "
            f"needs an explicit policy: one of {POLICIES} (or rollout=False)")
    r = rollout_fn([m.weights.double() for m in maps], softmax=[m.softmax for m in maps],
                   policy=policy, head_fusion=head_fusion, discard_ratio=discard_ratio,
                   residual=residual, cls_index=cls_index)
    row = r[:, cls_index, prefix:]
    if grid is not None:
        row = row.reshape(len(row), *grid)
    return {"policy": policy, "softmax": all(m.softmax for m in maps),
            "head_fusion": head_fusion, "discard_ratio": discard_ratio, "residual": residual,
            "cls_index": cls_index, "layers": [m.name for m in maps],
            "map": row[index].numpy(), "mean_map": row.mean(0).numpy()}
