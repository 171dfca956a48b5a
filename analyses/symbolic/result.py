"""The Result of a symbolic analysis (:class:`SymbolicResult`), as written to ``--json``."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from inspect_kit.results import WHOLE, Result, measure

from . import formula as fm
from .library import Primitive, by_name, from_spec


@dataclasses.dataclass(frozen=True)
class SymbolicResult(Result):
    """The symbolic formula of a KAN.

    ``edges``: one dict per edge with ``layer``, ``out``, ``in``, ``function``, ``params``
    ``{a, b, c, d}`` (edge = ``c f(a x + b) + d``), ``r2`` (fit points), ``r2_val`` (held-out
    observed points), ``complexity``, ``attribution``, ``pareto`` (front of (complexity,
    held-out R^2)), ``zeroed``. ``formula``: sympy string in ``x1..xn`` (``; ``-separated
    ``y_k = ...`` for several outputs). ``formula_r2_model``/``formula_r2_data``: R^2 of the
    formula against the network and the targets on the inputs it was fitted on;
    ``formula_r2_model_held_out``/``formula_r2_data_held_out``: the same on held-out samples
    (the test split, else samples not drawn; None when there are none, see
    ``details["held_out"]``). ``route``: the route that produced each output's formula
    (``edges`` or ``structure``, ``; ``-separated). ``exact``: exact recovery of ``truth``
    (criterion in :mod:`.formula`), None without a truth. ``details``: LaTeX, op count, raw
    (unsnapped) formula, every route's candidate with its scores, timings, library, curves.
    """

    result_type = "SymbolicResult"
    edges: list[dict[str, Any]]
    formula: str
    formula_r2_model: float
    formula_r2_data: float | None
    exact: bool | None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    formula_r2_model_held_out: float | None = None
    formula_r2_data_held_out: float | None = None
    route: str | None = None

    omit_if_none: ClassVar[tuple[str, ...]] = ("exact",)
    item_keys: ClassVar[tuple[str, ...]] = ("layer", "out", "in")
    main_figure: ClassVar[str | None] = "plotting.symbolic:edge_fits"

    def headline(self) -> list[dict[str, Any]]:
        """R^2 of the formula against the network and the data, exact recovery, edges."""
        out = [measure(WHOLE, "formula_r2_model", self.formula_r2_model),
               measure(WHOLE, "formula_r2_data", self.formula_r2_data),
               measure(WHOLE, "edges", len(self.edges)),
               measure(WHOLE, "zeroed_edges", sum(e.get("function") == "0" for e in self.edges))]
        if self.exact is not None:
            out.append(measure(WHOLE, "exact", self.exact))
        return out

    def rows(self) -> list[dict[str, Any]]:
        return [{k: e.get(k) for k in ("layer", "out", "in", "function", "r2", "r2_val",
                                       "complexity", "attribution")} | dict(e["params"])
                for e in self.edges]

    def primitives(self) -> dict[str, Primitive]:
        """The library the result was fitted with (rebuilt from the stored sympy strings)."""
        spec = self.details.get("library")
        return {p.name: p for p in from_spec(spec)} if spec else by_name()

    def sympy(self) -> list[Any]:
        """The output expressions as sympy objects (symbols ``x1..xn`` real)."""
        from inspect_kit.formula_parser import parse_formula

        n = int(self.details.get("n_inputs", 0))
        loc = {s.name: s for s in fm.input_symbols(n)}
        parts = [p.split("=", 1)[1] if "=" in p else p for p in self.formula.split("; ")]
        return [parse_formula(p, loc) for p in parts]


__all__ = ["SymbolicResult"]
