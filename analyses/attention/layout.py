"""What the tokens of an attention map are: image patches on a grid, or a token sequence.

* **image**: the model declares its patch grid (``grid_shape``; ``patch_embed.grid_size`` as in
  timm; a HuggingFace vision config's ``image_size // patch_size``) or the input is an image
  (float (B, C, H, W), or flat with a known ``image_shape``) and the token count is a square
  (plus one CLS token). Maps are drawn as images, distances are in patch cells.
* **sequence**: integer token ids, an ``attention_mask``, or float (B, L, E) inputs. No grid is
  ever invented: maps are (layer, head, query, key) over token positions, distances are
  |i - j|, and ``attention_mask == 0`` marks padding, left out of every statistic.

The **query** token (whose row the per-head maps and the rollout map show) is ``query`` when
given (a position; negative counts back from each input's last real token, -1 = the last real
token), else the last real token of a causal model (its row is the only one that sees the whole
sequence) and the first token otherwise (CLS of encoders and ViTs).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from inspect_kit.errors import OptionError
from inspect_kit.view.batches import Batch

from . import stats


@dataclasses.dataclass(frozen=True)
class Layout:
    """``kind`` (image or sequence), CLS-like ``prefix`` tokens, patch ``grid`` or None, the
    token ``mask`` (n, L) of padded sequences (True = real token) and the ``token_ids`` (n, L)."""

    kind: str
    prefix: int
    grid: tuple[int, int] | None
    mask: torch.Tensor | None = None
    token_ids: torch.Tensor | None = None


def model_grid(model: nn.Module) -> tuple[int | None, tuple[int, int] | None]:
    """``(prefix tokens, patch grid)`` the model declares (None where it declares nothing)."""
    prefix = getattr(model, "num_prefix_tokens", None)
    grid = getattr(model, "grid_shape", None)
    if grid is None:
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    cfg = getattr(model, "config", None)
    if grid is None and cfg is not None and getattr(cfg, "image_size", None) \
            and getattr(cfg, "patch_size", None) and not hasattr(cfg, "vocab_size"):
        size, patch = cfg.image_size, cfg.patch_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        patch = (patch, patch) if isinstance(patch, int) else tuple(patch)
        grid = (size[0] // patch[0], size[1] // patch[1])
    if grid is not None and prefix is None and hasattr(model, "cls_token"):
        prefix = 1
    return prefix, (tuple(int(g) for g in grid) if grid is not None else None)


def _token_mask(batch: Batch) -> torch.Tensor | None:
    m = batch.kwargs.get("attention_mask")
    if isinstance(m, torch.Tensor) and m.dim() == 2 and m.shape[0] == batch.n:
        return m != 0
    return None


def _is_sequence(batch: Batch, image_shape: tuple[int, ...] | None) -> bool:
    if "input_ids" in batch.kwargs or _token_mask(batch) is not None:
        return True
    x = batch.x
    if not isinstance(x, torch.Tensor):
        return False
    if not x.is_floating_point():
        return True  # integer token ids
    if x.dim() == 3:
        return image_shape is None or x[0].numel() != math.prod(image_shape)
    return False


def resolve(model: nn.Module, batch: Batch, n_keys: int, *, prefix_tokens: int | None,
            grid: tuple[int, int] | None, image_shape: tuple[int, ...] | None) -> Layout:
    """The :class:`Layout` of the attention over ``n_keys`` tokens (module docstring)."""
    m_prefix, m_grid = model_grid(model)
    if grid is None and m_grid is None and _is_sequence(batch, image_shape):
        ids = batch.kwargs.get("input_ids")
        if ids is None and isinstance(batch.x, torch.Tensor) and not batch.x.is_floating_point():
            ids = batch.x
        mask = _token_mask(batch)
        if mask is not None and mask.shape[1] != n_keys:
            mask = None
        return Layout("sequence", int(prefix_tokens or 0), None, mask,
                      ids if isinstance(ids, torch.Tensor) and ids.dim() == 2 else None)
    prefix, lay_grid = stats.infer_layout(
        n_keys, prefix_tokens if prefix_tokens is not None else m_prefix,
        grid if grid is not None else m_grid)
    if grid is not None and lay_grid is None:
        raise OptionError(f"grid={tuple(grid)} with {prefix} prefix tokens does not fit the "
                          f"{n_keys} tokens of the attention; fix grid or prefix_tokens")
    return Layout("image", prefix, lay_grid)


def lengths(layout: Layout, n: int, n_keys: int) -> torch.Tensor:
    """(n,) number of real tokens per input (all ``n_keys`` without a mask)."""
    if layout.mask is None:
        return torch.full((n,), n_keys, dtype=torch.long)
    return layout.mask.long().sum(1)


def queries(layout: Layout, query: int | None, causal: bool, n: int, n_keys: int) -> torch.Tensor:
    """(n,) the query position of every input (module docstring); OptionError when outside."""
    if query is not None and (isinstance(query, bool) or not isinstance(query, int)):
        raise OptionError(f"query must be a token position (an int; -1 = the last real token) "
                          f"or None, got {query!r}")
    q = query if query is not None else (-1 if causal else 0)
    if q >= 0:
        pos = torch.full((n,), q, dtype=torch.long)
    elif layout.mask is not None:
        # the |q|-th real token from the end (padding may be on either side)
        real = layout.mask.long()
        from_end = real.flip(1).cumsum(1).flip(1)  # real tokens at or after each position
        hit = (from_end == -q) & layout.mask
        pos = torch.where(hit.any(1), hit.long().argmax(1), torch.full((n,), -1))
    else:
        pos = torch.full((n,), n_keys + q, dtype=torch.long)
    if bool(((pos < 0) | (pos >= n_keys)).any()):
        raise OptionError(f"query={query} is outside the {n_keys} tokens of some inputs; pass a "
                          f"position in [0, {n_keys}) or -1 for the last real token")
    return pos


def describe(kind: str, causal: bool, q: int) -> str:
    """One sentence saying what the rollout row of query token ``q`` means."""
    if kind != "sequence":
        return f"flow from every token into token {q} (the CLS token when q = 0)"
    if causal:
        return (f"flow from tokens 0..{q} into token {q}: causal attention, so later tokens "
                "never reach it; the last real token is the only one that sees the whole input")
    return f"flow from every token of the sequence into token {q}"


def info(layout: Layout, index: int) -> dict[str, Any]:
    """What the Result records about the layout (JSON-safe)."""
    return {"kind": layout.kind,
            "attention_mask": None if layout.mask is None else layout.mask.long().cpu().numpy(),
            "token_ids": None if layout.token_ids is None
            else [int(t) for t in layout.token_ids[index].tolist()]}
