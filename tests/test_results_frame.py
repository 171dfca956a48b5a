"""The shared long table of every Result (``to_frame``) and the analysis's own table (``table``)."""

import dataclasses
import json
import math
from typing import ClassVar

import numpy as np
import pandas as pd

from inspect_kit.provenance import entry_point
from inspect_kit.results import FRAME_COLUMNS, WHOLE, Result, measure


@dataclasses.dataclass(frozen=True)
class Spectrum(Result):
    values: np.ndarray
    errors: np.ndarray
    total: float
    total_se: float

    item_keys: ClassVar[tuple[str, ...]] = ("rank",)
    stderr_of: ClassVar[dict[str, str]] = {"value": "error"}

    def headline(self):
        return [measure(WHOLE, "total", self.total, self.total_se)]

    def rows(self):
        return [{"rank": i + 1, "value": float(v), "error": float(e), "kind": "outlier",
                 "ok": True} for i, (v, e) in enumerate(zip(self.values, self.errors))]


@dataclasses.dataclass(frozen=True)
class Plain(Result):
    x: float


@entry_point("spectrum")
def spectrum(model, data, *, seed=0, budget=3):
    v = np.arange(budget, 0, -1, dtype=float)
    return Spectrum(values=v, errors=v / 10, total=float(v.sum()), total_se=0.25)


def test_frame_has_the_shared_columns_and_every_number():
    r = spectrum(None, None, seed=4, budget=3)
    f = r.to_frame()
    assert tuple(f.columns) == FRAME_COLUMNS
    assert set(f["analysis"]) == {"spectrum"}
    assert json.loads(f["options"].iloc[0]) == {"seed": 4, "budget": 3}
    total = f[(f.item == WHOLE) & (f.metric == "total")]
    assert total.value.tolist() == [6.0] and total.stderr.tolist() == [0.25]
    values = f[f.metric == "value"]
    assert values.item.tolist() == ["rank=1", "rank=2", "rank=3"]
    assert values.value.tolist() == r.values.tolist()
    assert values.stderr.tolist() == (r.values / 10).tolist()
    # the stderr column is no metric of its own, strings are no numbers, booleans are 0/1
    assert "error" not in set(f.metric) and "kind" not in set(f.metric)
    assert f[f.metric == "ok"].value.tolist() == [1.0, 1.0, 1.0]
    assert math.isnan(f[f.metric == "ok"].stderr.iloc[0])


def test_frames_of_runs_and_types_concatenate_into_one_table():
    a, b = spectrum(None, None, budget=2), spectrum(None, None, budget=4)
    both = pd.concat([a.to_frame(), b.to_frame(), Plain(x=1.0).to_frame()], ignore_index=True)
    assert tuple(both.columns) == FRAME_COLUMNS
    assert len(both) == (1 + 2 * 2) + (1 + 4 * 2) + 0
    assert both.groupby("options").size().to_dict() == {
        json.dumps({"budget": 2, "seed": 0}): 5, json.dumps({"budget": 4, "seed": 0}): 9}
    assert both.value.dtype == float and both.stderr.dtype == float


def test_wide_frame_keeps_the_analysis_rows():
    r = spectrum(None, None, budget=2)
    assert r.wide_frame().to_dict("records") == r.rows()
