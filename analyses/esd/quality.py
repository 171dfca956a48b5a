"""Relate layer-averaged ESD metrics across checkpoints to their test accuracy.

HTSR's model-quality claim (Martin, Peng & Mahoney 2021, Nat. Commun. 12:4122): across a
family of models, smaller mean alpha and mean alpha-hat (``alpha * log10 lambda_max``) go with
better generalisation. :func:`alpha_vs_quality` takes one ESDResult per checkpoint and the
checkpoints' test accuracies and reports Pearson and Spearman correlations (and a least-squares
slope) of accuracy against each mean metric.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from inspect_kit.errors import OptionError
from inspect_kit.results import WHOLE, Result, measure

METRICS = ("mean_alpha", "mean_alpha_hat", "mean_log_norm", "mean_log_spectral_norm")


@dataclasses.dataclass(frozen=True)
class QualityResult(Result):
    """Per-checkpoint means and their correlation with accuracy (NaN when undefined)."""

    labels: list[str]
    accuracy: list[float]
    mean_alpha: list[float]
    mean_alpha_hat: list[float]
    mean_log_norm: list[float]
    mean_log_spectral_norm: list[float]
    pearson: dict[str, float]
    spearman: dict[str, float]
    slope: dict[str, float]

    result_type: ClassVar[str] = "QualityResult"
    item_keys: ClassVar[tuple[str, ...]] = ("label",)
    main_figure: ClassVar[str | None] = "plotting.esd:plot_quality"

    def headline(self) -> list[dict[str, Any]]:
        """Pearson and Spearman correlation of each mean metric with the accuracy."""
        return [measure(WHOLE, f"{kind}_{m}", getattr(self, kind).get(m))
                for kind in ("pearson", "spearman") for m in METRICS]

    def rows(self) -> list[dict[str, Any]]:
        return [{"label": lab, "accuracy": a, **{m: getattr(self, m)[i] for m in METRICS}}
                for i, (lab, a) in enumerate(zip(self.labels, self.accuracy))]


def _rank(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def alpha_vs_quality(results: Sequence[Any], accuracy: Sequence[float],
                     labels: Sequence[str] | None = None) -> QualityResult:
    """Correlate each checkpoint's mean alpha / alpha-hat / norms with its test accuracy.

    ``results``: one :class:`~analyses.esd.result.ESDResult` per checkpoint (means over
    successful, unflagged rows, see ``summary``); ``accuracy``: test accuracy per checkpoint.
    """
    if len(results) != len(accuracy):
        raise OptionError(f"got {len(results)} results but {len(accuracy)} accuracies; pass one "
                          "accuracy per checkpoint")
    if len(results) < 2:
        raise OptionError("alpha_vs_quality needs at least 2 checkpoints")
    acc = np.asarray(accuracy, dtype=float)
    cols = {m: np.array([r.summary.get(m, math.nan) for r in results], dtype=float)
            for m in METRICS}
    pearson = {m: _corr(v, acc) for m, v in cols.items()}
    spearman = {}
    slope = {}
    for m, v in cols.items():
        ok = np.isfinite(v) & np.isfinite(acc)
        spearman[m] = _corr(_rank(v[ok]), _rank(acc[ok])) if ok.sum() >= 3 else math.nan
        slope[m] = float(np.polyfit(v[ok], acc[ok], 1)[0]) if ok.sum() >= 2 and np.std(
            v[ok]) > 0 else math.nan
    return QualityResult(
        labels=[str(x) for x in (labels or range(len(results)))], accuracy=acc.tolist(),
        **{m: cols[m].tolist() for m in METRICS}, pearson=pearson, spearman=spearman,
        slope=slope,
    )
