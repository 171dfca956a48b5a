"""Loss and error along the straight line between two models, and its barriers.

The path is ``theta(t) = (1 - t) theta_A + t theta_B`` for every floating parameter and, under
the ``follow`` buffer policy (default), every floating buffer too (KAN grids, BatchNorm running
statistics), so that ``t = 1`` is exactly model B; under ``keep`` the buffers stay A's (see
:mod:`analyses.lmc.repair` for resetting BatchNorm statistics instead). Points are evaluated by
the model view (:meth:`inspect_kit.view.ModelView.points`: loop or vmap chosen by cost, exact
first-layer and layer-stack shortcuts, points split over ranks under ``torchrun``). After the
uniform grid of ``steps`` points, the curve is refined around its maximum (both the raw maximum
and the maximum above the chord) with four extra points per maximum.

Barriers (reported side by side, for loss and for error):

* ``barrier_mean = max_t L(t) - (L(0) + L(1)) / 2`` (Frankle et al. 2020, "Linear Mode
  Connectivity and the Lottery Ticket Hypothesis"; Ainsworth et al. 2023, Def. 2.2);
* ``barrier_linear = max_t [L(t) - ((1 - t) L(0) + t L(1))]`` (Entezari et al. 2022, "The Role
  of Permutation Invariance in Linear Mode Connectivity of Neural Networks", Eq. 1).

They differ when ``L(0) != L(1)``: a monotone path has ``barrier_mean = |L(0) - L(1)| / 2`` and
``barrier_linear = 0`` (when it lies below its chord).

>>> import numpy as np
>>> t = np.array([0.0, 0.5, 1.0]); v = np.array([1.0, 3.0, 2.0])
>>> barrier_mean(t, v), barrier_linear(t, v)
(1.5, 1.5)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import ArchitectureMismatchError, OptionError
from inspect_kit.params import same_structure

State = Mapping[str, torch.Tensor]


def barrier_mean(t: np.ndarray, values: np.ndarray) -> float:
    """``max_t L(t) - (L(0) + L(1)) / 2`` (endpoints: the values at t = 0 and t = 1)."""
    t, v = np.asarray(t, float), np.asarray(values, float)
    lo, hi = v[np.argmin(t)], v[np.argmax(t)]
    return float(np.max(v) - 0.5 * (lo + hi))


def barrier_linear(t: np.ndarray, values: np.ndarray) -> float:
    """``max_t [L(t) - ((1 - t) L(0) + t L(1))]`` (never below 0: the endpoints score 0)."""
    t, v = np.asarray(t, float), np.asarray(values, float)
    lo, hi = v[np.argmin(t)], v[np.argmax(t)]
    return float(np.max(v - ((1 - t) * lo + t * hi)))


def check_pair(state_a: State, state_b: State) -> None:
    """Raise :class:`ArchitectureMismatchError` naming the first tensor that differs."""
    try:
        same_structure(state_a, state_b)
    except ArchitectureMismatchError as exc:
        raise ArchitectureMismatchError(
            f"the two models do not share an architecture: {exc}. Interpolation and alignment "
            "need two checkpoints of the same model (same layer names and shapes)") from None


def lerp(state_a: State, state_b: State, t: float) -> dict[str, torch.Tensor]:
    """One point ``(1 - t) A + t B`` (non-floating tensors from A)."""
    return {n: ((1 - t) * a + t * state_b[n]) if a.is_floating_point() else a
            for n, a in state_a.items()}


def _refine(t: np.ndarray, curves: list[np.ndarray]) -> np.ndarray:
    """Four extra points around the maximum (and chord-excess maximum) of each curve."""
    h = 1.0 / (len(t) - 1) if len(t) > 1 else 0.5
    extra: set[float] = set()
    for v in curves:
        for score in (v, v - ((1 - t) * v[0] + t * v[-1])):
            c = t[int(np.argmax(score))]
            for d in (-h / 2, -h / 4, h / 4, h / 2):
                x = round(float(c + d), 12)
                if 0 < x < 1 and not np.isclose(t, x).any():
                    extra.add(x)
    return np.asarray(sorted(extra))


def curve(
    views: Mapping[str, Any],
    direction: Mapping[str, torch.Tensor],
    *,
    steps: int = 25,
    refine: bool = True,
    engine: str = "auto",
    point_fn: Callable[[np.ndarray], list[dict[str, torch.Tensor]]] | None = None,
) -> dict[str, Any]:
    """Loss/error on every split's view along ``A + t * direction``, plus both barriers.

    ``direction`` is ``B - A`` (from :meth:`~inspect_kit.view.ModelView.direction_to`);
    ``point_fn(ts)`` may replace plain interpolation (REPAIR): it returns one state per t.
    """
    if steps < 2:
        raise OptionError(f"steps must be >= 2 (the two endpoints), got {steps}")
    engines = {s: v.points([direction]) for s, v in views.items()} if point_fn is None else {}

    def run(ts: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        out = {}
        states = point_fn(ts) if point_fn is not None else None
        for s, v in views.items():
            if states is None:
                coefs = torch.as_tensor(np.asarray(ts, float)).reshape(-1, 1)
                lo, acc, _ = engines[s].run(coefs, engine=engine)
            else:
                lo, acc = v.evaluate_states(states)
            out[s] = (np.asarray(lo, float),
                      1.0 - np.asarray(acc, float) if v.classify else None)
        return out

    t = np.linspace(0.0, 1.0, int(steps))
    res = run(t)
    if refine:
        extra = _refine(t, [lo for lo, _ in res.values()] +
                        [e for _, e in res.values() if e is not None])
        if len(extra):
            more = run(extra)
            order = np.argsort(np.concatenate([t, extra]), kind="stable")
            res = {s: (np.concatenate([res[s][0], more[s][0]])[order],
                       None if res[s][1] is None else
                       np.concatenate([res[s][1], more[s][1]])[order]) for s in res}
            t = np.concatenate([t, extra])[order]
    return summarize(t, {s: lo for s, (lo, _) in res.items()},
                     {s: e for s, (_, e) in res.items()})


def summarize(t: np.ndarray, loss: dict[str, np.ndarray],
              error: dict[str, np.ndarray | None]) -> dict[str, Any]:
    """The curve dict: ``t``, ``loss``, ``error`` and both barriers for loss and error."""
    has_err = all(e is not None for e in error.values())
    bm = {"loss": {s: barrier_mean(t, v) for s, v in loss.items()},
          "error": {s: barrier_mean(t, v) for s, v in error.items()} if has_err else None}
    bl = {"loss": {s: barrier_linear(t, v) for s, v in loss.items()},
          "error": {s: barrier_linear(t, v) for s, v in error.items()} if has_err else None}
    return {"t": np.asarray(t), "loss": loss, "error": error if has_err else None,
            "barrier_mean": bm, "barrier_linear": bl}
