"""The Result of a loss-landscape analysis (a frozen dataclass, JSON via ``to_dict``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, measure


@dataclasses.dataclass(frozen=True)
class LandscapeResult(Result):
    """Loss (and accuracy) on a 1-D line or 2-D plane ``theta + a d1 (+ b d2)``.

    Fields (the JSON keys of ``inspect-kit landscape --json``):

    * ``axes``: one coordinate list per direction (odd length, centre exactly 0).
    * ``loss``: ``(n,)`` for a line, ``(n_a, n_b)`` for a plane, ``loss[i, j]`` at
      ``(axes[0][i], axes[1][j])``.
    * ``accuracy``: same shape (classification only, else None).
    * ``center_loss`` / ``center_accuracy``: the grid value at the trained point (0, 0).
    * ``directions_info``: kind ("random"/"pca"/"interpolation"), norm, ignore, seed, the filter
      rule, ``norm_ratio_d{k}`` = |d_k|/|theta|, ``cos_d1_d2``, PCA explained variance ratios.
    * ``path``: optimiser path projected on the plane (``coords`` (T, 2), ``residual`` (T,),
      ``relative_residual`` (T,)), or None.
    * ``subset_check``: when evaluated on a data subset, the subset vs full-data loss at a few
      points (``points``, ``subset_loss``, ``full_loss``, ``abs_error``, ``rel_error``), or None.
    * ``meta``: split, mode, BatchNorm policy, n_samples, engine, ms per point, span, steps.
    """

    axes: list[list[float]]
    loss: np.ndarray
    center_loss: float
    directions_info: dict[str, Any]
    accuracy: np.ndarray | None = None
    center_accuracy: float | None = None
    path: dict[str, Any] | None = None
    subset_check: dict[str, Any] | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    result_type: ClassVar[str] = "LandscapeResult"
    main_figure: ClassVar[str | None] = "plotting.landscape:plot_landscape"

    @property
    def item_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("a",) if self.dims == 1 else ("a", "b")

    def headline(self) -> list[dict[str, Any]]:
        """Loss at the centre, the grid's extremes, accuracy at the centre."""
        loss = np.asarray(self.loss, dtype=float)
        out = [measure(WHOLE, "center_loss", self.center_loss),
               measure(WHOLE, "min_loss", np.nanmin(loss)),
               measure(WHOLE, "max_loss", np.nanmax(loss))]
        if self.center_accuracy is not None:
            out.append(measure(WHOLE, "center_accuracy", self.center_accuracy))
        return out

    @property
    def dims(self) -> int:
        return len(self.axes)

    def axis_label(self, k: int) -> str:
        """Axis name, with the explained variance for PCA directions (Li et al.'s labels)."""
        info = self.directions_info
        ev = info.get("explained_variance_ratio")
        if info.get("kind") == "pca" and ev is not None and k < len(ev):
            return f"PC{k + 1} ({100 * ev[k]:.1f}% of variance)"
        if info.get("kind") == "interpolation":
            return "interpolation coefficient"
        return f"direction {k + 1} ({info.get('norm', 'filter')}-normalised)"

    def rows(self) -> list[dict[str, Any]]:
        out = []
        loss = np.asarray(self.loss)
        acc = None if self.accuracy is None else np.asarray(self.accuracy)
        if self.dims == 1:
            for i, a in enumerate(self.axes[0]):
                out.append({"a": a, "loss": loss[i],
                            "accuracy": None if acc is None else acc[i]})
        else:
            for i, a in enumerate(self.axes[0]):
                for j, b in enumerate(self.axes[1]):
                    out.append({"a": a, "b": b, "loss": loss[i, j],
                                "accuracy": None if acc is None else acc[i, j]})
        return out
