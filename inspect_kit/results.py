"""The Result base class every analysis returns.

A Result is a frozen dataclass. It converts itself to JSON-safe data (:meth:`Result.to_dict`),
saves and loads itself atomically (:meth:`Result.save`, :meth:`Result.load`), and has two
table views (pandas imported lazily): :meth:`Result.wide_frame`, the analysis's own wide table
(one row per :meth:`Result.rows` entry), and :meth:`Result.to_frame`, the long table with the
columns :data:`FRAME_COLUMNS` shared by every analysis, so that frames of several runs and
analyses concatenate into one DataFrame. In a notebook a Result shows itself (``_repr_html_``: its key
numbers, the first rows of its table and its main figure). Plots, reports and the command line
consume Results and never recompute what a Result already holds.

JSON conventions: numpy arrays and tensors become (nested) lists; non-finite floats become
``null`` so the files are strict JSON; nested Results and dataclasses become dicts. On load,
fields annotated as ``np.ndarray`` are turned back into float arrays (``null`` -> NaN).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from .errors import InspectKitError
from .io import atomic_write

R = TypeVar("R", bound="Result")

SCHEMA_VERSION = 1

#: the columns of :meth:`Result.to_frame`, the same for every analysis
FRAME_COLUMNS = ("analysis", "item", "metric", "value", "stderr", "options")

#: the ``item`` of numbers about the whole model (``Result.headline``)
WHOLE = "model"


def measure(item: str, metric: str, value: Any, stderr: Any = None) -> dict[str, Any]:
    """One measurement of the shared table: ``value`` (and ``stderr``) as floats (None -> NaN).

    >>> measure("model", "trace", 12, 0.5)
    {'item': 'model', 'metric': 'trace', 'value': 12.0, 'stderr': 0.5}
    """
    return {"item": str(item), "metric": str(metric), "value": _float(value),
            "stderr": None if stderr is None else _float(stderr)}


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def _scalar(v: Any) -> bool:
    """A number a table cell can hold as a measurement (bools count as 0/1)."""
    return isinstance(v, (int, float, np.integer, np.floating, np.bool_)) and not isinstance(v, str)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into JSON-safe Python data (see module docstring)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, complex):
        return [to_jsonable(obj.real), to_jsonable(obj.imag)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, Result):
            return obj.to_dict()
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().tolist())
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def _nan_array(value: Any) -> np.ndarray:
    def fix(v: Any) -> Any:
        if isinstance(v, list):
            return [fix(x) for x in v]
        return np.nan if v is None else v

    return np.asarray(fix(value), dtype=float)


@dataclasses.dataclass(frozen=True)
class Result:
    """Base class of all analysis results (a frozen dataclass).

    Subclasses add fields; they get ``to_dict``/``save``/``load`` for free. Every Result carries
    ``provenance`` (options, seed, seconds, versions; see :mod:`inspect_kit.provenance`), read
    through :attr:`seconds`, :attr:`seed` and :attr:`options`. Override
    :meth:`rows` to make :meth:`to_frame` return a table, and :meth:`from_dict` when a field
    needs more than the default decoding. Fields named in ``omit_if_none`` are left out of
    :meth:`to_dict` while None (optional parts of a JSON file, e.g. ``exact`` without a truth)
    and come back as None when missing.
    """

    result_type: ClassVar[str] = "Result"
    omit_if_none: ClassVar[tuple[str, ...]] = ()
    #: columns of :meth:`rows` that name a row's item in :meth:`to_frame` (the rest, when
    #: numbers, become its metrics); empty: the row's position
    item_keys: ClassVar[tuple[str, ...]] = ()
    #: metric -> the column of :meth:`rows` holding its standard error
    stderr_of: ClassVar[dict[str, str]] = {}
    #: the main figure, ``"module:function"`` of a plotting function taking the Result (named,
    #: not imported: plotting sits above the analyses); None: no figure
    main_figure: ClassVar[str | None] = None
    _types: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Result._types[cls.__name__] = cls

    #: how the Result was made: ``analysis``, ``options`` (as called), ``seed``, ``seconds``,
    #: ``versions``, ``started`` and what the analysis resolved (e.g. ``view``: dtype, samples,
    #: buffer policy); filled by :func:`inspect_kit.provenance.entry_point`
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict, kw_only=True,
                                                   compare=False, repr=False)

    @property
    def seconds(self) -> float | None:
        """Wall-clock seconds of the analysis call."""
        return self.provenance.get("seconds")

    @property
    def seed(self) -> int | None:
        """The seed of every random choice of the call."""
        return self.provenance.get("seed")

    @property
    def options(self) -> dict[str, Any]:
        """The options of the call, as given (JSON-safe)."""
        return dict(self.provenance.get("options", {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (the stable interface of ``--json`` files)."""
        out = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
               if not (f.name in self.omit_if_none and getattr(self, f.name) is None)}
        return out

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """Rebuild a Result from :meth:`to_dict` output (arrays restored for ndarray fields)."""
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.name in cls.omit_if_none:
                    kwargs[f.name] = None
                continue
            value = data[f.name]
            hint = str(hints.get(f.name, ""))
            if "ndarray" in hint and value is not None:
                value = _nan_array(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def dumps(self) -> str:
        """The JSON text :meth:`save` writes (and the CLI's ``--json``): ``result_type``,
        ``schema_version`` and ``result`` (every field, provenance included)."""
        payload = {
            "result_type": type(self).__name__,
            "schema_version": SCHEMA_VERSION,
            "result": self.to_dict(),
        }
        return json.dumps(payload, indent=2, allow_nan=False) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Write the Result as JSON atomically (temp file, then rename)."""
        with atomic_write(path) as fh:
            fh.write(self.dumps())

    @classmethod
    def load(cls: type[R], path: str | os.PathLike) -> R:
        """Read a Result written by :meth:`save` or the CLI's ``--json``; the stored type must
        match ``cls`` (``Result.load`` returns the stored type when its module is imported)."""
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InspectKitError(f"cannot read result file {path}: {exc}") from exc
        if not isinstance(payload, dict) or "result" not in payload:
            raise InspectKitError(f"{path} is not a result file (no 'result_type'/'result'); "
                                  "write it with Result.save or the command line's --json")
        stored = payload.get("result_type")
        if cls is Result and stored in Result._types:  # Result.load: the stored type
            return Result._types[stored].from_dict(payload["result"])  # type: ignore[return-value]
        if cls is not Result and stored != cls.__name__:
            raise InspectKitError(
                f"{path} holds a {stored}, not a {cls.__name__}; load it with {stored}.load"
            )
        return cls.from_dict(payload["result"])

    def rows(self) -> list[dict[str, Any]]:
        """Rows of the table view; subclasses with tabular content override this."""
        raise NotImplementedError(f"{type(self).__name__} has no table view")

    def wide_frame(self) -> Any:
        """The analysis's own table (:meth:`rows`) as a pandas DataFrame (one row per item, one
        column per quantity; the columns differ between analyses)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    @property
    def analysis(self) -> str:
        """The analysis that made the Result (its entry point's name, else the type's)."""
        return str(self.provenance.get("analysis") or type(self).__name__)

    def headline(self) -> list[dict[str, Any]]:
        """The key numbers about the whole model (item :data:`WHOLE`), made with
        :func:`measure`; subclasses override it (a report shows these first)."""
        return []

    def measurements(self) -> list[dict[str, Any]]:
        """Every number of the Result as ``{item, metric, value, stderr}`` records: the
        :meth:`headline`, then each row of :meth:`rows` (item from :attr:`item_keys`, one record
        per numeric column; a column named in :attr:`stderr_of` is the stderr of its metric)."""
        out = list(self.headline())
        try:
            rows = self.rows()
        except NotImplementedError:
            rows = []
        errs = set(self.stderr_of.values())
        for i, row in enumerate(rows):
            item = (", ".join(f"{k}={row.get(k)}" for k in self.item_keys) if self.item_keys
                    else str(i))
            for k, v in row.items():
                if k in self.item_keys or k in errs or not _scalar(v):
                    continue
                se = row.get(self.stderr_of[k]) if k in self.stderr_of else None
                out.append(measure(item, k, v, se if _scalar(se) else None))
        return out

    def to_frame(self) -> Any:
        """Every number as a long DataFrame with the columns :data:`FRAME_COLUMNS` (``analysis``,
        ``item``, ``metric``, ``value``, ``stderr``, ``options`` as sorted JSON), the same for
        every analysis: ``pd.concat([r.to_frame() for r in results])`` is one table.
        (:meth:`wide_frame` is the analysis's own wide table.)"""
        import pandas as pd

        options = json.dumps(to_jsonable(self.options), sort_keys=True)
        records = [{"analysis": self.analysis, **m, "options": options}
                   for m in self.measurements()]
        frame = pd.DataFrame(records, columns=list(FRAME_COLUMNS))
        return frame.astype({"value": float, "stderr": float})

    def _repr_html_(self) -> str:
        """A notebook's view: key numbers, the first rows and the main figure (rendered by
        :mod:`plotting.report.card`, imported on call; a plain table when plotting is absent)."""
        try:
            from importlib import import_module

            return import_module("plotting.report.card").card_html(self)
        except ImportError:  # pragma: no cover - the kit without its plotting floor
            import html

            return "<pre>" + html.escape(repr(self)) + "</pre>"
