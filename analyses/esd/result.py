"""The Result of an ESD analysis: one row per layer matrix (skipped ones included, with a reason)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from inspect_kit.errors import InspectKitError
from inspect_kit.results import WHOLE, Result, measure

#: the keys every row has (the CLI's JSON contract lists a subset of these)
ROW_KEYS = (
    "name", "param", "kind", "shape", "N", "M", "rf", "n_evals", "status", "skip_reason", "flag",
    "warning", "alpha", "alpha_raw", "alpha_ci", "xmin", "xmax", "D", "sigma", "num_tail",
    "alpha_hat", "log_norm", "log_spectral_norm", "stable_rank", "log_alpha_norm", "entropy",
    "mp_softrank", "num_spikes", "sigma_mp", "bulk_max", "detx_num", "detx_val", "erg_gap",
    "detx_logsum", "duplicate_of", "ww_type", "partial", "small_n",
)

#: per-layer means reported in ``summary``
SUMMARY_KEYS = ("alpha", "alpha_hat", "log_norm", "log_spectral_norm", "stable_rank",
                "mp_softrank", "log_alpha_norm")


def summarise(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over rows with a successful, unflagged fit (a duplicate counts as a row)."""
    ok = [r for r in layers if r["status"] == "success" and not r.get("flag")]
    out: dict[str, Any] = {
        "n_rows": len(layers),
        "n_analysed": sum(r["status"] == "success" for r in layers),
        "n_skipped": sum(r["status"] == "skipped" for r in layers),
        "n_flagged": sum(bool(r.get("flag")) for r in layers),
    }
    for k in SUMMARY_KEYS:
        vals = [r.get(k) for r in ok]
        vals = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        out["mean_" + k] = float(np.mean(vals)) if vals else math.nan
    return out


@dataclasses.dataclass(frozen=True)
class ESDResult(Result):
    """Per-matrix ESD metrics (see ``analyses.esd.metrics`` for every definition).

    ``layers``: one dict per matrix with the keys in :data:`ROW_KEYS`; ``eigenvalues``: the ESD
    of every analysed row (sorted, for plots); ``method``: "fast" or "compat"; ``reference``:
    with ``backend="weightwatcher"``, WeightWatcher's own rows (``layers``, ``summary``,
    ``seconds``) and the side-by-side ``comparison`` with ours, else None.
    """

    layers: list[dict[str, Any]]
    method: str = "fast"
    backend: str = "native"
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    eigenvalues: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    reference: dict[str, Any] | None = None
    source: str = ""

    result_type: ClassVar[str] = "ESDResult"
    item_keys: ClassVar[tuple[str, ...]] = ("name",)
    stderr_of: ClassVar[dict[str, str]] = {"alpha": "sigma"}
    main_figure: ClassVar[str | None] = "plotting.esd:plot_summary"

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.layers]

    def headline(self) -> list[dict[str, Any]]:
        """Row counts and the per-layer means of :data:`SUMMARY_KEYS`."""
        return [measure(WHOLE, k, v) for k, v in self.summary.items()
                if isinstance(v, (int, float))]

    @property
    def comparison(self) -> list[dict[str, Any]] | None:
        """The side-by-side table against WeightWatcher (``backend="weightwatcher"``)."""
        return None if self.reference is None else self.reference.get("comparison")

    @property
    def names(self) -> list[str]:
        return [r["name"] for r in self.layers]

    def row(self, name: str) -> dict[str, Any]:
        """The row called ``name`` (raises with the known names otherwise)."""
        for r in self.layers:
            if r["name"] == name:
                return r
        raise InspectKitError(f"no ESD row named {name!r}; rows: {', '.join(self.names)}")

    def evals(self, name: str) -> np.ndarray:
        """The sorted ESD of row ``name`` (a duplicate row reads its original's ESD)."""
        r = self.row(name)
        key = r.get("duplicate_of") or name
        if key not in self.eigenvalues:
            raise InspectKitError(
                f"no eigenvalues stored for {name!r} (skipped, or keep_evals=False was used)"
            )
        return np.asarray(self.eigenvalues[key], dtype=float)

    def analysed(self) -> list[dict[str, Any]]:
        """Rows with a successful fit."""
        return [r for r in self.layers if r["status"] == "success"]
