"""The Result of :func:`analyses.attention.api.attention`.

JSON (``to_dict``): ``layers`` (one object per attention call with ``name``, ``shape`` (B, H, Q, K),
``entropy``, ``distance``, ``negative_mass``, ``row_sum_deviation`` per head, and more), the image
index and layout, and ``rollout`` only when it was computed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import Result


def _nan_array(value: Any) -> np.ndarray:
    """JSON lists (``null`` = NaN) -> float array."""
    def fix(v: Any) -> Any:
        return [fix(x) for x in v] if isinstance(v, list) else (np.nan if v is None else v)

    return np.asarray(fix(value), dtype=float)


def _arr(v: Any) -> np.ndarray | None:
    return None if v is None else _nan_array(v)


@dataclasses.dataclass(frozen=True)
class LayerAttention:
    """Statistics of one attention call (see :mod:`analyses.attention.stats`).

    Per-head arrays have length H. ``spectrum``/``score_spectrum`` are (3, H, r): min, mean and
    max over the images of the singular values after / before the activation.
    ``cls_attention`` is the CLS row over patch keys for the chosen image, (H, h, w) with a grid
    or (H, K - prefix) without. ``score_range`` is (H, 2).
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
    cls_attention: np.ndarray | None
    spectrum: np.ndarray
    score_spectrum: np.ndarray | None

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "entropy", "distance", "negative_mass", "negative_fraction", "row_sum_deviation",
        "score_range", "cls_attention", "spectrum", "score_spectrum")

    @property
    def heads(self) -> int:
        return int(self.shape[1])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerAttention:
        kw = {f.name: d.get(f.name) for f in dataclasses.fields(cls)}
        for k in cls._ARRAYS:
            kw[k] = _arr(kw[k])
        kw["shape"] = tuple(int(s) for s in kw["shape"])
        return cls(**kw)


@dataclasses.dataclass(frozen=True)
class AttentionResult(Result):
    """Attention maps and statistics of a model on a batch of inputs.

    ``layers``: one :class:`LayerAttention` per attention call, in forward order. ``index``: the
    image the maps (``cls_attention``, ``rollout``) are for; ``image`` its pixels (C, H, W) when
    the input is an image. ``rollout``: ``None`` or a dict with ``policy``, ``head_fusion``,
    ``discard_ratio``, ``residual``, ``cls_index`` and ``map`` (the CLS row of R over patch keys
    for image ``index``, (h, w) with a grid) and ``mean_map`` (mean over the images).
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

    result_type: ClassVar[str] = "AttentionResult"
    omit_if_none: ClassVar[tuple[str, ...]] = ("rollout",)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttentionResult:
        ro = data.get("rollout")
        if ro is not None:
            ro = dict(ro)
            for k in ("map", "mean_map"):
                if ro.get(k) is not None:
                    ro[k] = _nan_array(ro[k])
        grid = data.get("grid")
        return cls(
            layers=tuple(LayerAttention.from_dict(d) for d in data["layers"]),
            index=int(data["index"]), n_samples=int(data["n_samples"]),
            prefix_tokens=int(data["prefix_tokens"]),
            grid=None if grid is None else (int(grid[0]), int(grid[1])),
            image=_arr(data.get("image")), label=data.get("label"), model=data["model"],
            rollout=ro, provenance=dict(data.get("provenance") or {}))

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
                })
        return out
