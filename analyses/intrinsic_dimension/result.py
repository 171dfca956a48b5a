"""The Result of an intrinsic-dimension search (``IntrinsicDimensionResult``), as in ``--json``.

JSON keys: ``dims`` (every tried ``d``, increasing) with ``accuracy`` (evaluation accuracy at
the end of training) and ``train_loss``; ``curves`` (one list of epoch rows per ``d``, same
order); ``full_accuracy`` and ``full_curve`` (the directly trained model, or the given
baseline), ``chance_accuracy``; ``thresholds``, ``d_int90`` and ``brackets`` keyed by baseline
definition ("relative": 90% of the full accuracy; "gap": 90% of the way from chance to it);
``projection``, ``n_params`` (``D``), ``epochs``, ``lr``, ``eval_split``, ``seconds_per_run``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, measure


@dataclasses.dataclass(frozen=True)
class IntrinsicDimensionResult(Result):
    """Accuracy of random-subspace training against ``d`` and the d_int90 of both baselines."""

    result_type: ClassVar[str] = "IntrinsicDimensionResult"
    omit_if_none: ClassVar[tuple[str, ...]] = ("full_curve",)
    item_keys: ClassVar[tuple[str, ...]] = ("d",)
    main_figure: ClassVar[str | None] = "plotting.intrinsic_dimension:plot_intrinsic_dimension"

    def headline(self) -> list[dict[str, Any]]:
        """d_int90 per baseline definition (NaN when not reached), full and chance accuracy."""
        out = [measure(WHOLE, f"d_int90_{k}", v) for k, v in self.d_int90.items()]
        return out + [measure(WHOLE, "full_accuracy", self.full_accuracy),
                      measure(WHOLE, "chance_accuracy", self.chance_accuracy),
                      measure(WHOLE, "n_params", self.n_params)]

    dims: list[int]
    accuracy: np.ndarray
    train_loss: np.ndarray
    curves: list[list[dict[str, float]]]
    full_accuracy: float
    chance_accuracy: float
    thresholds: dict[str, float]
    d_int90: dict[str, int | None]
    brackets: dict[str, list[int] | None]
    projection: str
    n_params: int
    epochs: int
    lr: float
    eval_split: str
    seconds_per_run: list[float]
    full_curve: list[dict[str, float]] | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One row per tried ``d`` with which thresholds it reaches."""
        return [{"d": d, "accuracy": float(a), "train_loss": float(lo),
                 **{f"reaches_{k}": bool(a >= t) for k, t in self.thresholds.items()}}
                for d, a, lo in zip(self.dims, self.accuracy, self.train_loss)]
