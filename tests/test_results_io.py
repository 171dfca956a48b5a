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
    assert list(back.wide_frame()["k"]) == [1, 2]
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


def test_optional_fields_left_out_while_none_and_restored_as_none(tmp_path):
    import dataclasses
    from typing import ClassVar

    from inspect_kit.results import Result

    @dataclasses.dataclass(frozen=True)
    class Opt(Result):
        result_type: ClassVar[str] = "Opt"
        omit_if_none: ClassVar[tuple[str, ...]] = ("extra",)
        value: float
        extra: dict | None
        note: str | None = None

    r = Opt(value=1.5, extra=None)
    d = r.to_dict()
    assert "extra" not in d and d["note"] is None  # only listed fields are dropped
    assert Opt.from_dict(d) == r
    full = Opt(value=2.0, extra={"a": 1})
    assert Opt.from_dict(full.to_dict()) == full
