"""Loss and accuracy at many points ``origin + sum_k c_k d_k`` of a line or plane, functionally.

A point's state is every parameter and buffer of the view; directions name the tensors that move
(selected parameters, and the floating buffers under the ``follow`` buffer policy, see
:meth:`~.core.ModelView.direction_to`); the others keep the origin's values. Every point is
evaluated with ``torch.func.functional_call`` on separate tensors; the model is never edited.
Two engines give the same numbers:

* ``"loop"``: one functional forward per point (the fastest on one compute-bound CPU thread);
* ``"vmap"``: ``chunk`` points per vectorised forward (wins when per-op overhead dominates: small
  data subsets, contended threads, GPUs) on long grids. ``"auto"`` loops unless the grid is long
  enough to pay for vmap's set-up, then times both and keeps vmap only when clearly faster.

Two exact shortcuts are checked once against the plain forward and used when they reproduce it:
first-layer linearity (:mod:`.first_layer`) and a low-overhead plan for plain layer stacks
(:mod:`.stack`). In ``model_mode="train"`` every point gets fresh copies of the buffers (the loop
engine only), so running statistics are never written back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.func import vmap

from ..errors import OptionError
from .first_layer import FirstLinear, setup_first_linear
from .stack import StackPlan, stack_plan

ENGINES = ("auto", "loop", "vmap")
TRIAL_MIN_MS = 20_000.0  # auto tries vmap only when the loop would take longer than this


class PointEngine:
    """Loss and accuracy of a view's model at ``origin + coef @ dirs`` over all its batches."""

    def __init__(self, view: Any, dirs: Sequence[Mapping[str, torch.Tensor]], *,
                 origin: Mapping[str, torch.Tensor] | None = None,
                 first_layer_trick: bool = True, accuracy: bool = True) -> None:
        self.view = view
        view._need_loss()
        self.base = dict(view.state)
        if origin is not None:
            self.base.update({k: view._cast(v) for k, v in origin.items()})
        keys = [k for k in self.base if any(k in d for d in dirs)]
        unknown = [k for d in dirs for k in d if k not in self.base]
        if unknown:
            raise OptionError(f"direction names tensor {unknown[0]!r}, which the model lacks")
        self.dirs = [{k: (view._cast(d[k]) if k in d else torch.zeros_like(self.base[k]))
                      for k in keys} for d in dirs]
        self.K = len(dirs)
        self.classify = accuracy and view.classify
        self.train = view.model_mode == "train"
        self.moving = [k for k in keys if any(bool(d[k].any()) for d in self.dirs)]
        self.trick: FirstLinear | None = None
        self.plan: StackPlan | None = None
        self.plan_trick = False
        if not self.train and not view.model_loss:
            moved = self._point_state([1.0] * self.K, flat=False)
            with view.mode():
                if first_layer_trick:
                    self.trick = setup_first_linear(view, self.base, self.dirs, moved)
                    if self.trick is not None and not self._trick_reproduces():
                        self.trick = None
                if view.forward is None and len(view.batches[0].args) == 1 \
                        and not view.batches[0].kwargs:
                    self.plan = stack_plan(view.model, self.base, moved, view.batches[0].x)
        self.plan_trick = (self.plan is not None and self.trick is not None
                           and self.plan.first_linear_key() == self.trick.w_key)
        if self.plan_trick:  # the first Linear's weights are never read: do not build them
            self.moving = [k for k in self.moving if k not in (self.trick.w_key, self.trick.b_key)]
        # moving tensors as one flat vector: origin_m + D_m^T c is one addmv per point
        self.origin_m = (torch.cat([self.base[k].reshape(-1) for k in self.moving])
                         if self.moving else None)
        self.D_mT = (torch.stack([torch.cat([d[k].reshape(-1) for k in self.moving])
                                  for d in self.dirs], dim=1).contiguous()
                     if self.moving else None)

    # -- states ------------------------------------------------------------------------------
    def _point_state(self, c: list[float], flat: bool = True) -> dict[str, torch.Tensor]:
        """The full state at ``origin + sum_k c_k d_k`` (unmoved tensors shared, not copied)."""
        p = dict(self.base)
        if self.moving:
            if not flat:
                for n in self.moving:
                    t = self.base[n]
                    for k, ck in enumerate(c):
                        t = torch.add(t, self.dirs[k][n], alpha=ck)
                    p[n] = t
            else:
                vec = torch.addmv(self.origin_m, self.D_mT,
                                  torch.tensor(c, dtype=self.D_mT.dtype, device=self.D_mT.device))
                i = 0
                for n in self.moving:
                    t = self.base[n]
                    p[n] = vec[i:i + t.numel()].view(t.shape)
                    i += t.numel()
        if self.train:
            p.update({k: p[k].clone() for k in self.view.buffer_names})
        return p

    def _stacked(self, coefs: torch.Tensor) -> dict[str, torch.Tensor]:
        B = coefs.shape[0]
        out = {}
        for k, t in self.base.items():
            if k in self.moving:
                d = torch.stack([dd[k] for dd in self.dirs])  # (K, *shape)
                out[k] = t.unsqueeze(0) + torch.tensordot(coefs.to(t.dtype), d, dims=1)
            else:
                out[k] = t.unsqueeze(0).expand(B, *t.shape)
        return out

    # -- engines -----------------------------------------------------------------------------
    def _score(self, out: torch.Tensor, y: torch.Tensor, loss: Any = None) -> tuple[float, int]:
        loss = self.view.loss_fn(out, y) if loss is None else loss
        if not self.classify:
            return float(loss), 0
        both = torch.stack([loss.double(), (out.argmax(-1) == y).sum().double()]).tolist()
        return both[0], int(both[1])

    def _trick_reproduces(self) -> bool:
        c = torch.full((self.K,), 0.5)
        plain = self._loop_point(c, None)
        fast = self._loop_point(c, self.trick)
        return abs(plain[0] - fast[0]) <= 1e-5 * max(1.0, abs(plain[0]))

    @torch.no_grad()
    def _loop_point(self, coef: torch.Tensor, trick: FirstLinear | None) -> tuple[float, float]:
        view = self.view
        c = [float(v) for v in coef]
        p = self._point_state(c, flat=hasattr(self, "D_mT"))
        total, correct = 0.0, 0
        nan = float("nan")
        if self.plan is not None:
            for b, batch in enumerate(view.batches):
                h0 = (trick.output_into(b, coef) if (trick is not None and self.plan_trick)
                      else None)
                lb, cb = self._score(self.plan.forward(p, batch.x, h0, own_h0=True), batch.target)
                total += lb * batch.n
                correct += cb
            return total / view.n_samples, (correct / view.n_samples if self.classify else nan)
        ctx = trick.hooked() if trick is not None else contextlib.nullcontext()
        if trick is not None:
            p.update(trick.fixed)
        with ctx:
            for b, batch in enumerate(view.batches):
                if trick is not None:
                    trick.h = trick.output(b, c)
                if view.model_loss:
                    value, out = view.loss_and_output(p, batch)
                    lb, cb = self._score(out, batch.target, value)
                else:
                    lb, cb = self._score(view.call(p, batch), batch.target)
                total += lb * batch.n
                correct += cb
        return total / view.n_samples, (correct / view.n_samples if self.classify else nan)

    @torch.no_grad()
    def _vmap_points(self, coefs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view = self.view
        B = coefs.shape[0]
        stacked = self._stacked(coefs)
        trick = self.trick
        if trick is not None:
            for k in trick.fixed:
                stacked.pop(k, None)
        total = torch.zeros(B, dtype=torch.float64)
        correct = torch.zeros(B, dtype=torch.float64)
        ctx = trick.hooked() if trick is not None else contextlib.nullcontext()
        with ctx:
            for b, batch in enumerate(view.batches):
                if trick is not None:
                    H = trick.output(b, coefs)

                    def one(p: dict, h: torch.Tensor, batch: Any = batch) -> torch.Tensor:
                        trick.h = h
                        return view.call({**p, **trick.fixed}, batch)

                    out = vmap(one)(stacked, H)
                else:
                    out = vmap(lambda p, batch=batch: view.call(p, batch))(stacked)
                try:
                    per = vmap(view.loss_fn, in_dims=(0, None))(out, batch.target)
                except Exception:  # a loss callable that vmap cannot trace
                    per = torch.stack([view.loss_fn(out[i], batch.target) for i in range(B)])
                total += per.double().cpu() * batch.n
                if self.classify:
                    correct += (out.argmax(-1) == batch.target).double().sum(-1).cpu()
        nan = torch.full((B,), float("nan"), dtype=torch.float64)
        return total / view.n_samples, (correct / view.n_samples if self.classify else nan)

    def evaluate(self, coefs: torch.Tensor, engine: str = "loop"
                 ) -> tuple[list[float], list[float]]:
        """Loss and accuracy at each row of ``coefs (B, K)`` with the named engine."""
        with self.view.mode():
            if engine == "vmap":
                lo, ac = self._vmap_points(coefs)
                return lo.tolist(), ac.tolist()
            res = [self._loop_point(c, self.trick) for c in coefs]
            return [r[0] for r in res], [r[1] for r in res]

    def run(self, coefs: torch.Tensor, *, engine: str = "auto", chunk: int = 25,
            on_chunk: Any = None) -> tuple[list[float], list[float], dict[str, Any]]:
        """Every row of ``coefs`` in chunks (see :func:`run_points`)."""
        return run_points(self, coefs, engine=engine, chunk=chunk, on_chunk=on_chunk)


def run_points(
    ev: PointEngine,
    coefs: torch.Tensor,
    *,
    engine: str = "auto",
    chunk: int = 25,
    on_chunk: Any = None,
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Evaluate every row of ``coefs`` in chunks; ``on_chunk(index_list, loss, acc)`` after each.

    ``engine="auto"`` times the loop on the first chunk. If the whole grid would take longer than
    ``TRIAL_MIN_MS`` that way (vmap's one-time set-up costs seconds), it alternates vmap, loop,
    vmap on the next chunks (after an untimed vmap warm-up) and keeps vmap for the rest only if
    both its timings beat the best loop timing by 20% (CPU time on one thread, wall clock
    otherwise); otherwise, and for grids under ``8 * chunk`` points, it loops.
    Returns ``(loss, acc, timing)`` with ms per point of each engine tried.
    """
    if engine not in ENGINES:
        raise OptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    if (ev.train or ev.view.model_loss) and engine != "loop":
        engine = "loop"  # train mode updates buffers in place; a model's own loss is not vmapped
    n = coefs.shape[0]
    loss: list[float] = [float("nan")] * n
    acc: list[float] = [float("nan")] * n
    timing: dict[str, Any] = {"ms_per_point": {}}
    chosen = None if engine == "auto" else engine
    trials: list[str] = []
    if chosen is None:
        trials = ["loop"] if n >= 8 * chunk else []
        if not trials:
            chosen = "loop"
    # one thread: process CPU time (robust to other processes); more threads: wall clock
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    trial_ms: dict[str, list[float]] = {"loop": [], "vmap": []}
    warmed = False
    start = 0
    t_all = time.perf_counter()
    while start < n:
        idx = list(range(start, min(n, start + chunk)))
        m = chosen if chosen is not None else trials.pop(0)
        if m == "vmap" and not warmed:
            warmed = True
            try:  # the first vmap call in a process pays a one-time set-up: keep it untimed
                ev.evaluate(coefs[idx[:2]], "vmap")
            except Exception:
                chosen = m = "loop"
                trials = []
        t0 = clock()
        try:
            lo, ac = ev.evaluate(coefs[idx], m)
        except Exception:
            if m != "vmap":
                raise
            chosen = m = "loop"  # a model vmap cannot batch: fall back to the loop
            trials = []
            t0 = clock()
            lo, ac = ev.evaluate(coefs[idx], m)
        dt = (clock() - t0) * 1e3 / len(idx)
        ms = timing["ms_per_point"]
        ms[m] = min(ms.get(m, dt), dt)
        trial_ms[m].append(dt)
        if chosen is None and len(trial_ms["loop"]) == 1 and not trial_ms["vmap"]:
            trials = ["vmap", "loop", "vmap"] if dt * n > TRIAL_MIN_MS else []
            if not trials:
                chosen = "loop"
        if chosen is None and not trials:
            # vmap must win clearly in both of its trials: a noisy tie goes to the loop
            chosen = "vmap" if max(trial_ms["vmap"]) < 0.8 * min(trial_ms["loop"]) else "loop"
        for j, i in enumerate(idx):
            loss[i], acc[i] = lo[j], ac[j]
        if on_chunk is not None:
            on_chunk(idx, lo, ac)
        start += len(idx)
    timing["engine"] = chosen or next(iter(timing["ms_per_point"]), engine)
    timing["wall_ms_per_point"] = (time.perf_counter() - t_all) * 1e3 / max(1, n)
    timing["first_layer_trick"] = ev.trick is not None
    return loss, acc, timing
