"""Loss and error along the straight line between two parameter vectors, and its barriers.

The path is ``theta(t) = (1 - t) theta_A + t theta_B`` for every floating parameter *and buffer*
(KAN grids, BatchNorm running statistics: see :mod:`analyses.lmc.repair` for resetting those).
Points are evaluated functionally, many at once with ``vmap`` (:func:`inspect_kit.evaluate.
evaluate_many`), falling back to a loop for models vmap cannot handle. After the uniform grid of
``steps`` points, the curve is refined around its maximum (both the raw maximum and the maximum
above the chord) with four extra points per maximum.

Barriers (reported side by side, for loss and for error):

* ``barrier_mean = max_t L(t) - (L(0) + L(1)) / 2`` (Frankle et al. 2020, "Linear Mode
  Connectivity and the Lottery Ticket Hypothesis"; Ainsworth et al. 2023, Def. 2.2);
* ``barrier_linear = max_t [L(t) - ((1 - t) L(0) + t L(1))]`` (Entezari et al. 2022, "The Role
  of Permutation Invariance in Linear Mode Connectivity of Neural Networks", Eq. 1).

They differ when ``L(0) != L(1)``: a monotone path has ``barrier_mean = |L(0) - L(1)| / 2`` and
``barrier_linear = 0`` (when it lies below its chord).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import Batches
from inspect_kit.distributed import is_distributed
from inspect_kit.errors import ArchitectureMismatchError, OptionError
from inspect_kit.evaluate import evaluate, evaluate_many
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


def lerp_stack(state_a: State, state_b: State, ts: np.ndarray,
               names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Stacked points ``(1 - t) A + t B`` (shape ``(T, *shape)``); only ``names`` move if given."""
    tt = torch.as_tensor(np.asarray(ts, float))
    out = {}
    for n, a in state_a.items():
        b = state_b[n]
        if not a.is_floating_point() or (names is not None and n not in names):
            out[n] = a.unsqueeze(0).expand(len(tt), *a.shape)
            continue
        w = tt.to(a.dtype).reshape(-1, *([1] * a.dim()))
        out[n] = (1 - w) * a.unsqueeze(0) + w * b.unsqueeze(0)
    return out


def lerp(state_a: State, state_b: State, t: float) -> dict[str, torch.Tensor]:
    """One point ``(1 - t) A + t B`` (non-floating tensors from A)."""
    return {n: ((1 - t) * a + t * state_b[n]) if a.is_floating_point() else a
            for n, a in state_a.items()}


def evaluate_points(model: nn.Module, stacked: Mapping[str, torch.Tensor], data: Any, *,
                    loss: Any = None, chunk_size: int | None = 8, shard: bool = True
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss and error (1 - accuracy, None for regression) at every stacked point.

    ``shard``: under ``torchrun`` split the points over the ranks (see :mod:`.sharded`).
    """
    if shard and is_distributed():
        from .sharded import evaluate_points_sharded

        return evaluate_points_sharded(model, stacked, data, loss=loss, chunk_size=chunk_size)
    try:
        lo, acc = evaluate_many(model, stacked, data, loss=loss, chunk_size=chunk_size)
        return lo.numpy(), (None if acc is None else 1.0 - acc.numpy())
    except Exception:  # not vmap-compatible: one point at a time
        n = next(iter(stacked.values())).shape[0]
        ls, errs = [], []
        for i in range(n):
            ev = evaluate(model, data, params={k: v[i] for k, v in stacked.items()}, loss=loss)
            ls.append(ev.loss)
            errs.append(None if ev.accuracy is None else 1.0 - ev.accuracy)
        return np.asarray(ls), (None if errs[0] is None else np.asarray(errs, float))


def split_batches(data: Any, batch_size: int = 512) -> dict[str, Batches]:
    """``{"train": ..., "test": ...}`` for a data set with splits, else ``{"data": ...}``.

    A dict ``{name: data}`` names the splits itself.
    """
    from inspect_kit.data import DataBundle, load_data

    if isinstance(data, Mapping):
        return {str(k): Batches.of(v, batch_size=batch_size) if isinstance(v, tuple)
                else Batches.of(v) for k, v in data.items()}
    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle):
        out = {"train": Batches.of(data.split("train"), batch_size=batch_size)}
        if data.x_test is not None and data.y_test is not None:
            out["test"] = Batches.of(data.split("test"), batch_size=batch_size)
        return out
    if isinstance(data, tuple) and len(data) == 2:
        return {"data": Batches.of(data, batch_size=batch_size)}
    return {"data": Batches.of(data)}


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
    model: nn.Module,
    state_a: State,
    state_b: State,
    splits: Mapping[str, Batches],
    *,
    steps: int = 25,
    refine: bool = True,
    loss: Any = None,
    point_fn: Callable[[np.ndarray], list[dict[str, torch.Tensor]]] | None = None,
) -> dict[str, Any]:
    """Loss/error on every split along the path, plus both barriers for loss and error.

    ``point_fn(ts)`` may replace plain interpolation (REPAIR): it returns one state per t.
    """
    if steps < 2:
        raise OptionError(f"steps must be >= 2 (the two endpoints), got {steps}")
    check_pair(state_a, state_b)

    def run(ts: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        if point_fn is None:
            stacked = lerp_stack(state_a, state_b, ts)
        else:
            pts = point_fn(ts)
            stacked = {k: torch.stack([p[k] for p in pts]) for k in pts[0]}
        return {s: evaluate_points(model, stacked, b, loss=loss) for s, b in splits.items()}

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
