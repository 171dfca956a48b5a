"""The Result of :func:`analyses.attention.api.attention`.

JSON (``to_dict``): ``layers`` (one object per attention call with ``name``, ``shape`` (B, H, Q, K),
``entropy``, ``distance``, ``negative_mass``, ``row_sum_deviation`` per head, and more), the
token layout (``kind``: ``image`` or ``sequence``, ``seq_len``, ``prefix_tokens``, ``grid``,
``attention_mask``, ``token_ids``), the input index, and ``rollout`` only when it was computed.
Files written before ``query_attention`` and ``kind`` existed load with ``cls_attention`` as the
query row and ``kind`` inferred from the grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, measure


def _nan_array(value: Any) -> np.ndarray:
    """JSON lists (``null`` = NaN) -> float array."""
    def fix(v: Any) -> Any:
        return [fix(x) for x in v] if isinstance(v, list) else (np.nan if v is None else v)

    return np.asarray(fix(value), dtype=float)


def _arr(v: Any) -> np.ndarray | None:
    return None if v is None else _nan_array(v)


def _pairs(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """Window layout from JSON: lists back to tuples."""
    if d is None:
        return None
    return {k: tuple(int(x) for x in v) if isinstance(v, list) else v for k, v in d.items()}


@dataclasses.dataclass(frozen=True)
class LayerAttention:
    """Statistics of one attention call (see :mod:`analyses.attention.stats`).

    Per-head arrays have length H. ``spectrum``/``score_spectrum`` are (3, H, r): min, mean and
    max over the inputs of the singular values after / before the activation. ``score_range``
    is (H, 2). ``distance`` is in patch cells (images), window cells (windowed attention) or
    tokens (sequences).

    ``query_attention``: the chosen query token's row over the keys after the prefix, for the
    chosen input: (H, h, w) with a grid, else (H, K - prefix); None for windowed layers.
    ``matrix``: the head-mean (Q, K) attention of the chosen input, for token sequences (up to
    256 x 256). ``windows``: the window layout of windowed attention (``window_size``,
    ``shift_size``, ``resolution``, ``grid``, ``count`` windows per input), with
    ``window_entropy`` (nW, H) and ``window_map`` (H, rows, cols) of
    :mod:`analyses.attention.windows`.
    """

    name: str
    family: str
    module_type: str
    shape: tuple[int, ...]
    softmax: bool
    entropy: np.ndarray
    distance: np.ndarray | None
    negative_mass: np.ndarray
    negative_fraction: np.ndarray
    row_sum_deviation: np.ndarray
    score_range: np.ndarray | None
    query_attention: np.ndarray | None
    spectrum: np.ndarray
    score_spectrum: np.ndarray | None
    matrix: np.ndarray | None = None
    windows: dict[str, Any] | None = None
    window_entropy: np.ndarray | None = None
    window_map: np.ndarray | None = None

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "entropy", "distance", "negative_mass", "negative_fraction", "row_sum_deviation",
        "score_range", "query_attention", "spectrum", "score_spectrum", "matrix",
        "window_entropy", "window_map")

    @property
    def heads(self) -> int:
        return int(self.shape[1])

    @property
    def cls_attention(self) -> np.ndarray | None:
        """The former name of :attr:`query_attention` (the CLS row by default)."""
        return self.query_attention

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerAttention:
        d = dict(d)
        if "query_attention" not in d and "cls_attention" in d:
            d["query_attention"] = d.pop("cls_attention")
        kw = {f.name: d.get(f.name) for f in dataclasses.fields(cls)}
        for k in cls._ARRAYS:
            kw[k] = _arr(kw[k])
        kw["shape"] = tuple(int(s) for s in kw["shape"])
        kw["windows"] = _pairs(kw["windows"])
        return cls(**kw)


@dataclasses.dataclass(frozen=True)
class AttentionResult(Result):
    """Attention maps and statistics of a model on a batch of inputs.

    ``layers``: one :class:`LayerAttention` per attention call, in forward order.

    Layout: ``kind`` is ``"image"`` (patch tokens on ``grid`` after ``prefix_tokens`` CLS-like
    tokens) or ``"sequence"`` (token positions, no grid); ``seq_len``: tokens per input (keys
    of the last global attention; tokens per window when every layer is windowed);
    ``attention_mask`` (n, L) of padded sequences (1 = real token); ``token_ids`` of input
    ``index``; ``causal``: every self-attention map is causal (nothing above the diagonal).

    ``index``: the input the maps (``query_attention``, ``matrix``, ``window_map``,
    ``rollout``) are for; ``query``: its query token; ``image``: its pixels (C, H, W) for image
    inputs. ``rollout``: ``None`` or a dict with ``policy``, ``head_fusion``,
    ``discard_ratio``, ``residual``, ``query`` (per input), ``reading`` (what the row means),
    ``degenerate`` (inputs whose row is one-hot), ``map`` (the query row of R over the keys
    after the prefix for input ``index``, (h, w) with a grid) and ``mean_map`` (mean over the
    inputs).
    """

    layers: tuple[LayerAttention, ...]
    index: int
    n_samples: int
    prefix_tokens: int
    grid: tuple[int, int] | None
    image: np.ndarray | None
    label: int | None
    model: str
    rollout: dict[str, Any] | None = None
    kind: str = "image"
    seq_len: int = 0
    attention_mask: np.ndarray | None = None
    token_ids: list[int] | None = None
    causal: bool = False
    query: int = 0

    result_type: ClassVar[str] = "AttentionResult"
    omit_if_none: ClassVar[tuple[str, ...]] = ("rollout",)
    item_keys: ClassVar[tuple[str, ...]] = ("layer", "name", "head")
    main_figure: ClassVar[str | None] = "plotting.attention.summary:plot_summary"

    def headline(self) -> list[dict[str, Any]]:
        """Attention calls, heads, inputs and the mean entropy over every head."""
        ent = [float(np.mean(lay.entropy)) for lay in self.layers]
        return [measure(WHOLE, "layers", len(self.layers)),
                measure(WHOLE, "heads", sum(lay.heads for lay in self.layers)),
                measure(WHOLE, "n_samples", self.n_samples),
                measure(WHOLE, "mean_entropy", float(np.mean(ent)) if ent else None)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttentionResult:
        ro = data.get("rollout")
        if ro is not None:
            ro = dict(ro)
            for k in ("map", "mean_map"):
                if ro.get(k) is not None:
                    ro[k] = _nan_array(ro[k])
        grid = data.get("grid")
        mask = data.get("attention_mask")
        return cls(
            layers=tuple(LayerAttention.from_dict(d) for d in data["layers"]),
            index=int(data["index"]), n_samples=int(data["n_samples"]),
            prefix_tokens=int(data["prefix_tokens"]),
            grid=None if grid is None else (int(grid[0]), int(grid[1])),
            image=_arr(data.get("image")), label=data.get("label"), model=data["model"],
            rollout=ro, kind=data.get("kind", "image" if grid is not None else "sequence"),
            seq_len=int(data.get("seq_len", 0)),
            attention_mask=None if mask is None else np.asarray(mask, dtype=np.int64),
            token_ids=data.get("token_ids"), causal=bool(data.get("causal", False)),
            query=int(data.get("query", ro.get("cls_index", 0) if ro else 0)),
            provenance=dict(data.get("provenance") or {}))

    def rows(self) -> list[dict[str, Any]]:
        """One row per (layer, head): entropy, distance, negative mass, row-sum deviation."""
        out = []
        for i, lay in enumerate(self.layers):
            for h in range(lay.heads):
                out.append({
                    "layer": i, "name": lay.name, "head": h, "softmax": lay.softmax,
                    "entropy": float(lay.entropy[h]),
                    "distance": None if lay.distance is None else float(lay.distance[h]),
                    "negative_mass": float(lay.negative_mass[h]),
                    "row_sum_deviation": float(lay.row_sum_deviation[h]),
                    "windows": None if lay.windows is None else lay.windows.get("count"),
                })
        return out
