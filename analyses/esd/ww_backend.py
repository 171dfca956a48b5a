"""``backend="weightwatcher"``: WeightWatcher 0.7.7 itself on the same weights, beside our rows.

WeightWatcher is run on a deep copy of the model (its layer iterator sets a ``longname``
attribute on every module, which would otherwise modify the caller's model), with its stdout
("SMALL N PL FIT") and logging silenced. Its rows are renamed to this kit's parameter names
(``<module>.weight``) and mapped to this kit's keys; ``comparison`` pairs every WeightWatcher row
with this kit's row of the same matrix (``delta_alpha``, ``same_xmin``: bit-identical alpha in
``method="compat"``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .result import ROW_KEYS, summarise

#: WeightWatcher column -> this kit's row key
WW_COLUMNS = {
    "alpha": "alpha", "xmin": "xmin", "xmax": "xmax", "D": "D", "sigma": "sigma",
    "num_pl_spikes": "num_tail", "alpha_weighted": "alpha_hat", "log_norm": "log_norm",
    "log_spectral_norm": "log_spectral_norm", "stable_rank": "stable_rank",
    "log_alpha_norm": "log_alpha_norm", "entropy": "entropy", "mp_softrank": "mp_softrank",
    "num_spikes": "num_spikes", "sigma_mp": "sigma_mp", "bulk_max": "bulk_max",
    "detX_num": "detx_num", "ERG_gap": "erg_gap", "detX_val": "detx_val", "N": "N", "M": "M",
    "rf": "rf", "num_evals": "n_evals", "rand_num_spikes": "rand_num_spikes",
    "rand_mp_softrank": "rand_mp_softrank", "max_rand_eval": "max_rand_eval",
    "ww_softrank": "ww_softrank", "rand_distance": "rand_distance",
}


def run_weightwatcher(model: nn.Module | Mapping[str, torch.Tensor], **kwargs: Any) -> Any:
    """``WeightWatcher(model).analyze(**kwargs)`` on a copy, silenced; returns the DataFrame."""
    import weightwatcher as ww

    target = copy.deepcopy(model) if isinstance(model, nn.Module) else dict(model)
    logger = logging.getLogger("weightwatcher")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            watcher = ww.WeightWatcher(model=target)
            return watcher.analyze(**kwargs)
    finally:
        logger.setLevel(old)


def ww_rows(details: Any) -> list[dict[str, Any]]:
    """WeightWatcher's DataFrame as this kit's row dicts (name = ``<longname>.weight``)."""
    rows = []
    for _, rec in details.iterrows():
        longname = rec.get("longname") or rec.get("name")
        row: dict[str, Any] = {k: math.nan for k in ROW_KEYS}
        row.update(name=f"{longname}.weight", param=f"{longname}.weight",
                   kind=str(rec.get("layer_type", "")), status="success", skip_reason=None,
                   flag=None, warning=str(rec.get("warning", "")), alpha_ci=[math.nan, math.nan],
                   duplicate_of=None, ww_type=str(rec.get("layer_type", "")), partial=False,
                   shape=None, small_n=False, layer_id=int(rec["layer_id"]))
        for src, dst in WW_COLUMNS.items():
            if src in rec.index:
                v = rec[src]
                row[dst] = float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v
        row["alpha_raw"] = row["alpha"]
        if row["alpha"] == -1:
            row["status"] = "failed"
        rows.append(row)
    return rows


def compare_rows(ours: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """Side-by-side table: one entry per WeightWatcher row with this kit's matching row."""
    by_name = {r["name"]: r for r in ours}
    out = []
    for t in theirs:
        o = by_name.get(t["name"])
        a_o = o["alpha_raw"] if o else math.nan
        entry = {
            "name": t["name"], "alpha_ww": t["alpha"], "alpha_ours": a_o,
            "delta_alpha": abs(a_o - t["alpha"]) if o else math.nan,
            "xmin_ww": t["xmin"], "xmin_ours": o["xmin"] if o else math.nan,
            "same_xmin": bool(o) and o["num_tail"] == t["num_tail"]
            and abs(o["xmin"] - t["xmin"]) <= 1e-4 * abs(t["xmin"]),
            "D_ww": t["D"], "D_ours": o["D"] if o else math.nan,
            "num_tail_ww": t["num_tail"], "num_tail_ours": o["num_tail"] if o else math.nan,
        }
        for k in ("mp_softrank", "num_spikes", "detx_num", "log_norm", "alpha_hat"):
            if not (isinstance(t.get(k), float) and math.isnan(t[k])):
                entry[k + "_ww"] = t.get(k)
                entry[k + "_ours"] = o.get(k) if o else math.nan
        out.append(entry)
    return out


def weightwatcher_reference(model: nn.Module | Mapping[str, torch.Tensor],
                            ours: Sequence[dict[str, Any]], *, mp_fit: bool = False,
                            randomize: bool = False, detx: bool = True, min_evals: int = 8,
                            max_evals: int = 15000, layers: Sequence[str] | None = None
                            ) -> dict[str, Any]:
    """WeightWatcher's rows on the same weights and the side-by-side table against ``ours``."""
    t0 = time.perf_counter()
    details = run_weightwatcher(model, mp_fit=mp_fit, randomize=randomize, detX=detx,
                                min_evals=min_evals, max_evals=max_evals)
    seconds = time.perf_counter() - t0
    theirs = ww_rows(details)
    if layers:
        theirs = [r for r in theirs if any(s in r["name"] for s in layers)]
    return {"tool": "weightwatcher", "layers": theirs, "summary": summarise(theirs),
            "comparison": compare_rows(ours, theirs), "seconds": seconds}
