"""One model view split over ``torch.distributed`` ranks: data-parallel reductions and split points.

Under ``torchrun`` every rank builds the same :class:`~.core.ModelView` (same model, data and
seeded sample draw) and :func:`make_view` wraps it in a :class:`ShardedView`:

* **reductions** (loss, gradient, Hessian-vector products) are data-parallel. Rank ``r`` holds a
  contiguous shard ``S_r`` of ``N_r`` samples; because the full-data mean is the sample-weighted
  mean of the shard means,

      L = sum_r (N_r / N) L_r,    grad L = sum_r (N_r / N) grad L_r,    H v = sum_r (N_r / N) H_r v,

  one product is the shard's product followed by exactly one ``all_reduce(SUM)`` of a
  parameter-sized vector (a ``(k, n)`` block of probes: still one). Every rank then holds the
  same vector, so Lanczos, Hutch++ and SLQ, seeded alike, take the same steps everywhere (the
  data-parallel scheme of PyHessian, Yao et al. 2020, Sec. 3).
* **points** (landscape grids, interpolation curves, REPAIRed states) are split: each rank
  evaluates a contiguous share of the points on the full data, and one ``all_gather`` at the end
  of a run gives every rank every value (Li et al. 2018 split their grid over MPI ranks the same
  way). There is no collective per point.

On one process :func:`make_view` returns the plain view: nothing changes.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import distributed as D
from ..errors import DataError
from .batches import Batch
from .core import Evaluation, ModelView


def shard_batches(batches: list[Batch], r: int, w: int) -> list[Batch]:
    """Rank ``r``'s contiguous share: whole batches when there are at least ``w``, else a
    contiguous range of the samples of the (single) merged batch."""
    n_total = sum(b.n for b in batches)
    if n_total < w:
        raise DataError(f"{n_total} samples cannot be shared by {w} processes; use fewer "
                        "processes (torchrun --nproc-per-node) or more data")
    if len(batches) >= w:
        lo, hi = D.bounds(len(batches), r, w)
        return batches[lo:hi]
    from .batches import concat

    whole = concat(batches)
    lo, hi = D.bounds(n_total, r, w)
    return [whole.take(torch.arange(lo, hi))]


class ShardedView:
    """A :class:`ModelView` whose work is split over ranks (see the module docstring)."""

    def __init__(self, full: ModelView) -> None:
        self.full = full
        mine = shard_batches(full.batches, D.rank(), D.world_size())
        self.local = full.on_batches(mine)
        self.n_local = self.local.n_samples

    def __getattr__(self, name: str) -> Any:  # names, n, state, batches, dtype, ...
        if name in ("full", "local"):
            raise AttributeError(name)
        return getattr(self.full, name)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        return D.weighted_sum(t, self.n_local, self.full.n_samples)

    # -- data-parallel reductions --------------------------------------------------------------
    def evaluate(self, theta: Any = None) -> Evaluation:
        ev = self.local.evaluate(theta)
        acc = ev.accuracy if ev.accuracy is not None else 0.0
        both = self._reduce(torch.tensor([ev.loss, acc], dtype=torch.float64))
        return Evaluation(float(both[0]), float(both[1]) if ev.accuracy is not None else None,
                          self.full.n_samples)

    def loss(self, theta: Any = None) -> float:
        return self.evaluate(theta).loss

    def gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        return self._reduce(self.local.gradient(theta))

    def products(self, *args: Any, **kw: Any) -> Any:
        return self.local.products(*args, **kw)

    def hvp(self, V: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """``sum_r (N_r/N) H_r V``: the shard's product and one all-reduce per call."""
        return self.curvature_matvec(V, names, "hessian")

    def curvature_matvec(self, V: torch.Tensor, names: list[str] | None = None,
                         curvature: str = "hessian") -> torch.Tensor:
        """The shard's curvature product and one all-reduce per call."""
        return self._reduce(self.local.curvature_matvec(V, names, curvature))

    # -- split points ----------------------------------------------------------------------------
    def points(self, directions: list[Any], **kw: Any) -> ShardedPoints:
        return ShardedPoints(self.full.points(directions, **kw))

    def evaluate_states(self, states: list[Any]) -> tuple[list[float], list[float]]:
        n = len(states)
        lo, hi = D.bounds(n)
        nan = float("nan")
        loss, acc = [nan] * n, [nan] * n
        if hi > lo:
            lo_l, ac_l = self.full.evaluate_states(states[lo:hi])
            loss[lo:hi], acc[lo:hi] = lo_l, ac_l
        out = D.gather_points(loss, acc)
        return list(out[0]), list(out[1])


class ShardedPoints:
    """A point engine whose ``run`` evaluates this rank's share of the rows and gathers."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> Any:  # trick, classify, evaluate, ...
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    def run(self, coefs: torch.Tensor, *, on_chunk: Any = None, **kw: Any
            ) -> tuple[list[float], list[float], dict[str, Any]]:
        """Like :meth:`PointEngine.run`; ``on_chunk`` receives indices into ``coefs``."""
        n = coefs.shape[0]
        lo, hi = D.bounds(n)
        nan = float("nan")
        loss, acc = [nan] * n, [nan] * n
        timing: dict[str, Any] = {"engine": None, "ms_per_point": {}, "wall_ms_per_point": None}

        def shifted(idx: list[int], lo_v: list[float], ac_v: list[float]) -> None:
            if on_chunk is not None:
                on_chunk([i + lo for i in idx], lo_v, ac_v)

        if hi > lo:
            lo_l, ac_l, timing = self.engine.run(coefs[lo:hi], on_chunk=shifted, **kw)
            loss[lo:hi], acc[lo:hi] = lo_l, ac_l
        out = D.gather_points(loss, acc)
        return list(out[0]), list(out[1]), timing


def make_view(model: Any, data: Any, **options: Any) -> ModelView | ShardedView:
    """A :class:`ModelView` on one process; a :class:`ShardedView` under ``torchrun``."""
    view = ModelView(model, data, **options)
    return ShardedView(view) if D.is_distributed() else view
