"""The Result of a Hessian analysis (``HessianResult``), as written to ``--json``.

JSON keys: ``eigenvalues`` (descending) with ``residuals`` (``||H y - theta y||``) and
``converged``; ``trace``, ``trace_stderr``, ``trace_method``; ``density`` (``nodes``,
``weights``, ``grid``, ``values``, ``width``, ``threshold``, ``negative_mass``, log-|lambda|
view) when asked; ``blocks`` (one dict per parameter group) when asked; ``hvp_count``; and,
with ``backend="pyhessian"``, ``reference`` holding PyHessian's numbers on the same inputs.
Ritz vectors (``eigenvectors``) stay in memory only: they are left out of the JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, _nan_array, measure

_DENSITY_ARRAYS = ("nodes", "weights", "grid", "values", "log_grid", "log_values_positive",
                   "log_values_negative")


@dataclasses.dataclass(frozen=True)
class HessianResult(Result):
    """Top/bottom eigenvalues, trace, spectral density and blocks of a loss Hessian."""

    result_type: ClassVar[str] = "HessianResult"
    item_keys: ClassVar[tuple[str, ...]] = ("rank",)
    main_figure: ClassVar[str | None] = "plotting.hessian:plot_hessian"

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: list[bool]
    which: str
    trace: float | None
    trace_stderr: float | None
    trace_method: str | None
    density: dict[str, Any] | None
    blocks: list[dict[str, Any]] | None
    hvp_count: int
    n_params: int
    n_samples: int
    param_names: list[str]
    skipped: list[str]
    model_mode: str | None
    curvature: str
    dtype: str
    method: str
    backend: str
    lanczos_steps: int
    reference: dict[str, Any] | None = None
    eigenvectors: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("eigenvectors", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HessianResult:
        obj = super().from_dict(data)
        fixes: dict[str, Any] = {}
        if obj.density is not None:
            fixes["density"] = {k: (_nan_array(v) if k in _DENSITY_ARRAYS and v is not None else v)
                                for k, v in obj.density.items()}
        if obj.blocks is not None:
            fixes["blocks"] = [{k: (_nan_array(v) if k in ("eigenvalues", "residuals") else v)
                                for k, v in b.items()} for b in obj.blocks]
        return dataclasses.replace(obj, **fixes) if fixes else obj

    @property
    def lambda_max(self) -> float:
        return float(np.max(self.eigenvalues)) if len(self.eigenvalues) else float("nan")

    @property
    def lambda_min(self) -> float:
        return float(np.min(self.eigenvalues)) if len(self.eigenvalues) else float("nan")

    def headline(self) -> list[dict[str, Any]]:
        """Extreme eigenvalues, the trace with its standard error, the negative mass."""
        out = [measure(WHOLE, "lambda_max", self.lambda_max),
               measure(WHOLE, "lambda_min", self.lambda_min)]
        if self.trace is not None:
            out.append(measure(WHOLE, "trace", self.trace, self.trace_stderr))
        if self.density is not None and self.density.get("negative_mass") is not None:
            out.append(measure(WHOLE, "negative_mass", self.density["negative_mass"]))
        out += [measure(WHOLE, "n_params", self.n_params),
                measure(WHOLE, "n_samples", self.n_samples),
                measure(WHOLE, "hvp_count", self.hvp_count)]
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per eigenvalue (rank, value, residual, converged)."""
        return [{"rank": i + 1, "eigenvalue": float(v), "residual": float(r),
                 "converged": bool(c)}
                for i, (v, r, c) in enumerate(zip(self.eigenvalues, self.residuals,
                                                  self.converged))]


@dataclasses.dataclass(frozen=True)
class OutliersResult(Result):
    """Class/cross-class structure of the GGN's outliers (see :mod:`.outliers`).

    ``ggn_eigenvalues`` / ``hessian_eigenvalues``: the top eigenvalues (descending) of the GGN
    and of the Hessian; ``kinds``: per GGN eigenvalue, "class", "cross-class" or "bulk";
    ``class_capture`` / ``means_capture``: the share of each GGN eigenvector in the span of the
    class means / of all ``C^2`` means; ``attribution``: per GGN eigenvector the class and the
    (class, logit) pair it aligns with most; ``means_eigenvalues`` (``C^2``),
    ``class_eigenvalues`` (``C``) and ``cross_eigenvalues`` (``C(C-1)``): the spectra of the
    means' parts; ``counts``: outliers per kind; ``gap``: the last outlier over the first bulk
    eigenvalue; ``residual``: SLQ negative mass of ``H - G`` (None when skipped).
    """

    n_classes: int
    n_params: int
    n_samples: int
    ggn_eigenvalues: np.ndarray
    hessian_eigenvalues: np.ndarray
    kinds: list[str]
    class_capture: np.ndarray
    means_capture: np.ndarray
    attribution: list[dict[str, Any]]
    means_eigenvalues: np.ndarray
    class_eigenvalues: np.ndarray
    cross_eigenvalues: np.ndarray
    counts: dict[str, int]
    gap: float | None
    residual: dict[str, Any] | None = None

    result_type: ClassVar[str] = "OutliersResult"
    item_keys: ClassVar[tuple[str, ...]] = ("rank",)
    main_figure: ClassVar[str | None] = "plotting.outliers:plot_outliers"

    def headline(self) -> list[dict[str, Any]]:
        """Outliers per kind, the gap to the bulk and the negative mass of ``H - G``."""
        out = [measure(WHOLE, f"{k}_outliers", v) for k, v in self.counts.items()]
        out.append(measure(WHOLE, "gap", self.gap))
        if self.residual and self.residual.get("negative_mass") is not None:
            out.append(measure(WHOLE, "residual_negative_mass", self.residual["negative_mass"]))
        return out + [measure(WHOLE, "n_classes", self.n_classes),
                      measure(WHOLE, "n_params", self.n_params)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per GGN eigenvalue: rank, value, kind, captures, attribution."""
        return [{"rank": i + 1, "eigenvalue": float(v), "kind": k,
                 "class_capture": float(self.class_capture[i]),
                 "means_capture": float(self.means_capture[i]),
                 "class": a["class"], "pair": tuple(a["pair"])}
                for i, (v, k, a) in enumerate(zip(self.ggn_eigenvalues, self.kinds,
                                                  self.attribution))]
