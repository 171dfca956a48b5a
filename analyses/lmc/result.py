"""Results of the LMC analysis: :class:`LMCResult` (a Result) and :class:`AlignResult`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from inspect_kit.results import Result, measure, to_jsonable


@dataclasses.dataclass(frozen=True)
class LMCResult(Result):
    """Loss/error along ``theta(t) = (1 - t) theta_A + t theta_B`` and its barriers.

    ``t`` the points; ``loss[split]`` / ``error[split]`` (1 - accuracy; None for regression) of
    the final path (REPAIRed if asked, else aligned if asked, else plain); ``barrier_mean`` and
    ``barrier_linear`` = ``{"loss": {split: b}, "error": {split: b}}`` (see
    :mod:`analyses.lmc.interpolate` for the formulas). ``curves`` holds every path computed
    (``naive``, ``aligned``, ``repaired``) in the same form with its own ``t``. ``aligned``:
    the alignment summary (method, max |delta logit| of the permuted copy, fraction of parameters
    moved, sweeps, seconds, groups) or None. ``repair``: variance-collapse ratios per layer at
    t = 0.5 or None. ``layerwise``: per-group barriers or None. ``buffers``: the buffer policy
    of the path ("follow": floating buffers interpolate with the weights, so t = 1 is model B;
    "keep": model A's buffers throughout).
    """

    t: np.ndarray
    loss: dict[str, Any]
    error: dict[str, Any] | None
    barrier_mean: dict[str, Any]
    barrier_linear: dict[str, Any]
    curves: dict[str, Any]
    aligned: dict[str, Any] | None = None
    repair: dict[str, Any] | None = None
    layerwise: dict[str, Any] | None = None
    splits: tuple[str, ...] = ()
    steps: int = 25
    buffers: str = "follow"

    omit_if_none: ClassVar[tuple[str, ...]] = ("layerwise",)
    item_keys: ClassVar[tuple[str, ...]] = ("path", "split")
    main_figure: ClassVar[str | None] = "plotting.lmc:plot_lmc"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMCResult:
        data = dict(data)
        data["splits"] = tuple(data.get("splits", ()))
        return super().from_dict(data)

    def headline(self) -> list[dict[str, Any]]:
        """The barriers of the final path, per split (item: the split)."""
        out = []
        for kind in ("barrier_mean", "barrier_linear"):
            for what in ("loss", "error"):
                values = getattr(self, kind).get(what) or {}
                out += [measure(split, f"{what}_{kind}", v) for split, v in values.items()]
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per (path, split): both barriers for loss and error."""
        rows = []
        for path, c in self.curves.items():
            for s in c["loss"]:
                row = {"path": path, "split": s}
                for kind in ("barrier_mean", "barrier_linear"):
                    row[f"loss_{kind}"] = c[kind]["loss"][s]
                    if c[kind]["error"] is not None:
                        row[f"error_{kind}"] = c[kind]["error"][s]
                rows.append(row)
        return rows

    def summary(self) -> str:
        lines = []
        for r in self.rows():
            parts = [f"{k}={v:.4g}" for k, v in r.items() if isinstance(v, float)]
            lines.append(f"{r['path']:>8} {r['split']:>5}: " + " ".join(parts))
        if self.aligned:
            a = self.aligned
            lines.append(f"aligned by {a['method']}: max|dlogit|={a['max_abs_delta_logit']:.2e}, "
                         f"moved {100 * a['fraction_moved']:.1f}% of parameters, "
                         f"{a['seconds'] * 1e3:.1f} ms")
            frozen = a.get("frozen_groups") or []
            if frozen:
                lines.append(f"NOT permuted ({len(frozen)} groups kept in place by functions "
                             f"without a rule: {', '.join(a.get('unknown_ops', []))}): "
                             + ", ".join(f"{f['group']} ({f['size']})" for f in frozen))
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class AlignResult:
    """A permuted copy of model B aligned to A, and how it was found and checked.

    ``model`` is a new module (B is untouched); ``perms[g]`` the permutation of group ``g``
    (``W'[i] = W[perm[i]]``); ``max_abs_delta_logit`` = max |B(x) - B'(x)| on the check data (a
    permutation symmetry keeps it at float rounding); ``fraction_moved`` = share of parameter
    entries whose value changed; ``unknown_ops``: functions the permutation tracer had no rule
    for; ``frozen``: the unit groups they kept in place (``group``, ``size``, ``ops``,
    ``members``).
    """

    model: nn.Module
    perms: list[torch.Tensor]
    method: str
    max_abs_delta_logit: float
    fraction_moved: float
    seconds: float
    sweeps: int
    groups: list[dict[str, Any]]
    unknown_ops: tuple[str, ...] = ()
    cpu_seconds: float = float("nan")
    frozen: tuple[dict[str, Any], ...] = ()

    def info(self) -> dict[str, Any]:
        """JSON-safe summary (everything but the model)."""
        return {"method": self.method, "max_abs_delta_logit": self.max_abs_delta_logit,
                "fraction_moved": self.fraction_moved, "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds,
                "sweeps": self.sweeps, "groups": to_jsonable(self.groups),
                "identity_fraction": [float((p == torch.arange(len(p))).double().mean())
                                      for p in self.perms],
                "unknown_ops": list(self.unknown_ops),
                "frozen_groups": to_jsonable(list(self.frozen))}
