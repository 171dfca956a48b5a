import dataclasses
import json
import math
import os

import numpy as np
import pytest

from inspect_kit.errors import InspectKitError
from inspect_kit.io import atomic_write
from inspect_kit.results import Result


@dataclasses.dataclass(frozen=True)
class Toy(Result):
    name: str
    values: np.ndarray
    table: list

    def rows(self):
        return self.table


@dataclasses.dataclass(frozen=True)
class Other(Result):
    x: float


def test_roundtrip_json_safe(tmp_path):
    r = Toy("a", np.array([1.0, math.nan, 3.0]), [{"k": 1}, {"k": 2}])
    d = r.to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON: NaN became null
    assert d["values"] == [1.0, None, 3.0]
    r.save(tmp_path / "r.json")
    back = Toy.load(tmp_path / "r.json")
    assert back.name == "a" and np.isnan(back.values[1]) and back.values[2] == 3.0
    assert list(back.to_frame()["k"]) == [1, 2]
    with pytest.raises(InspectKitError, match="Toy"):
        Other.load(tmp_path / "r.json")


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("partial")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]
