"""Drawing primitives shared by the attention figures: one panel per kind of map.

* image patches (a grid): ``imshow`` of the (h, w) map;
* token sequences: per-token bars (the query's row, the rollout row) and token x token heatmaps
  (the head-mean matrix); padding tokens (``attention_mask == 0``) drawn grey;
* Swin windows: the window map on the feature map with the window borders drawn (shifted
  windows: borders at the shifted positions).

Signed maps (non-softmax attention, ``raw`` rollout) use a diverging colour map centred at zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PAD_COLOUR = "0.8"
MAX_TICKS = 24


def named(results: Any) -> dict[str, Any]:
    """One Result, a sequence or a mapping ``label -> Result`` as a dict."""
    if isinstance(results, Mapping):
        return dict(results)
    if isinstance(results, Sequence) and not hasattr(results, "layers"):
        return {f"{i}: {r.model}": r for i, r in enumerate(results)}
    return {results.model: results}


def gray(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    img = np.asarray(image, dtype=float)
    return img.mean(0) if img.ndim == 3 else img


def bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for sp in ax.spines.values():
        sp.set_visible(False)


def show(ax: Any, m: np.ndarray, vmax: float | None = None, signed: bool | None = None,
         **kw: Any) -> Any:
    """``imshow`` with viridis from 0 (or RdBu centred at 0 for signed maps); NaN blank."""
    m = np.asarray(m, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    signed = bool(np.nanmin(m) < 0) if signed is None else signed
    vmax = float(np.nanmax(np.abs(m))) if vmax is None else vmax
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    if signed:
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, **kw)
    else:
        im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax, **kw)
    bare(ax)
    return im


def image_extent(img: np.ndarray) -> tuple[float, float, float, float]:
    h, w = img.shape
    return (-0.5, w - 0.5, h - 0.5, -0.5)


def real_tokens(res: Any, length: int) -> np.ndarray:
    """(length,) bool: the real (non-padding) tokens of the chosen input."""
    m = getattr(res, "attention_mask", None)
    if m is None or np.asarray(m).shape[-1] != length:
        return np.ones(length, dtype=bool)
    return np.asarray(m)[res.index].astype(bool)


def token_labels(res: Any, length: int, offset: int = 0) -> list[str] | None:
    """Tick labels ``position:id`` for short sequences (None when there are too many)."""
    if length > MAX_TICKS:
        return None
    ids = getattr(res, "token_ids", None)
    pos = range(offset, offset + length)
    if ids is None or len(ids) < offset + length:
        return [str(p) for p in pos]
    return [f"{p}:{ids[p]}" for p in pos]


def bars(ax: Any, values: np.ndarray, res: Any, *, offset: int = 0, colour: str = "C0",
         vmax: float | None = None, padding: bool = True) -> Any:
    """Per-token bars of ``values`` over token positions ``offset..``; the chosen input's
    padding grey (``padding=False``: no input's, e.g. for means over inputs)."""
    v = np.nan_to_num(np.asarray(values, dtype=float))
    real = real_tokens(res, offset + len(v))[offset:] if padding else np.ones(len(v), bool)
    colours = [colour if r else PAD_COLOUR for r in real]
    cont = ax.bar(np.arange(offset, offset + len(v)), v, color=colours, width=0.8)
    ax.axhline(0, color="0.3", lw=0.6)
    labels = token_labels(res, len(v), offset)
    if labels is not None:
        ax.set_xticks(np.arange(offset, offset + len(v)), labels, rotation=90, fontsize=5)
    if vmax is not None and vmax > 0:
        lo = min(0.0, float(np.min(v)))
        ax.set_ylim(lo * 1.05, vmax * 1.05)
    ax.tick_params(labelsize=6)
    return cont


def heatmap(ax: Any, matrix: np.ndarray, res: Any) -> Any:
    """Token x token heatmap (rows: queries, columns: keys), padding rows and columns blank."""
    m = np.array(matrix, dtype=float)
    real = real_tokens(res, m.shape[-1])
    if m.shape[0] == m.shape[1]:
        m[~real, :] = np.nan
    m[:, ~real] = np.nan
    im = show(ax, m)
    labels = token_labels(res, m.shape[-1])
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
        if m.shape[0] == m.shape[1]:
            ax.set_yticks(range(len(labels)), labels, fontsize=5)
    ax.set_xlabel("key", fontsize=7)
    ax.set_ylabel("query", fontsize=7)
    return im


def window_borders(ax: Any, windows: dict[str, Any]) -> None:
    """Window borders on a window map: shifted-map boundaries k * w moved back by the shift."""
    (wh, ww), (sh, sw) = windows["window_size"], windows["shift_size"]
    res = windows.get("resolution")
    if res is None:
        return
    for r in {(k + sh) % res[0] for k in range(0, res[0], wh)} - {0}:
        ax.axhline(r - 0.5, color="w", lw=0.7)
    for c in {(k + sw) % res[1] for k in range(0, res[1], ww)} - {0}:
        ax.axvline(c - 0.5, color="w", lw=0.7)


def query_panel(ax: Any, res: Any, lay: Any, h: int, vmax: float, signed: bool) -> Any:
    """Head ``h`` of one layer for the chosen input: the query's row (image or bars) or, for
    windowed layers, the window map. Returns the image artist (None for bars)."""
    if lay.window_map is not None:
        im = show(ax, lay.window_map[h], vmax=vmax, signed=signed)
        window_borders(ax, lay.windows)
        return im
    row = lay.query_attention[h]
    if np.ndim(row) == 2:
        return show(ax, row, vmax=vmax, signed=signed)
    bars(ax, row, res, offset=res.prefix_tokens if res.kind == "image" else 0, vmax=vmax)
    return None


def panel_values(lay: Any) -> np.ndarray | None:
    """What :func:`query_panel` draws for a layer (all heads), or None."""
    return lay.window_map if lay.window_map is not None else lay.query_attention


def query_title(res: Any) -> str:
    """What the per-head maps show, in words."""
    if all(lay.window_map is not None for lay in res.layers):
        return "attention each token receives in its window, per layer and head"
    if res.kind == "sequence":
        return f"attention of query token {res.query} (input {res.index}) per layer and head"
    if res.query == 0 and res.prefix_tokens:
        return "CLS-to-patch attention per layer and head"
    return f"attention of token {res.query} per layer and head"
