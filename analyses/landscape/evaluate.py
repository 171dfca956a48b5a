"""Loss and accuracy at many points ``theta + sum_k c_k d_k`` of a line or plane, functionally.

Every point is evaluated with ``torch.func.functional_call`` on separate tensors; the model is
never edited. Two engines give the same numbers:

* ``"loop"``: one functional forward per point (the fastest on one compute-bound CPU thread);
* ``"vmap"``: ``chunk`` points per vectorised forward (wins when per-op overhead dominates: small
  data subsets, contended threads, GPUs) on long grids. ``"auto"`` loops unless the grid is long
  enough to pay for vmap's set-up, then times both and keeps vmap only when clearly faster.

**First-layer linearity** (exact): when the model's first operation on its input is one
``nn.Linear`` whose input ``u`` does not depend on any parameter, its output at
``W0 + sum_k c_k D_k`` is ``u W0^T + b0 + sum_k c_k (u D_k^T + e_k)``. The ``1 + K`` products are
computed once per batch and every point pays only ``K`` axpys instead of a matmul. It is applied
through a forward pre-hook (input replaced by a zero-width view) and a forward hook (output
replaced by the precomputed sum), both removed on exit; it is checked once against the plain
functional forward and dropped if it does not reproduce it.

**BatchNorm policy**: ``"keep"`` only. The model runs in ``mode`` (default ``"eval"``), so
BatchNorm uses the running statistics stored with the trained weights at every point (Li et
al.'s ``dir_type="weights"``). In ``mode="train"`` every point gets fresh copies of the buffers,
so the model's own running statistics are never updated.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from inspect_kit.data import Batches, LossFn, resolve_loss, task_of
from inspect_kit.errors import OptionError
from inspect_kit.modes import model_mode
from inspect_kit.params import Params, flatten, named_buffers, unflatten

from .stack import StackPlan, stack_plan

METHODS = ("auto", "loop", "vmap")
TRIAL_MIN_MS = 20_000.0  # auto tries vmap only when the loop would take longer than this
_TRICK_BYTES = 256 * 2**20  # memory cap for the precomputed first-layer products


def _linear_calls(model: nn.Module, params: Params, x: torch.Tensor) -> list[tuple[str, Any]]:
    """``(name, input)`` of every ``nn.Linear`` call of one functional forward, in call order."""
    calls: list[tuple[str, Any]] = []
    handles = []
    try:
        for name, m in model.named_modules():
            if type(m) is nn.Linear:
                handles.append(m.register_forward_pre_hook(
                    lambda mod, args, name=name: calls.append((name, args[0]))))
        functional_call(model, params, (x,))
    finally:
        for h in handles:
            h.remove()
    return calls


class _FirstLinear:
    """Precomputed first-layer products per batch (see the module docstring)."""

    def __init__(self, name: str, module: nn.Linear, prods: list[list[torch.Tensor]]):
        self.name, self.module, self.prods = name, module, prods
        self.w_key = f"{name}.weight" if name else "weight"
        self.b_key = f"{name}.bias" if name else "bias"
        self.fixed: Params = {self.w_key: module.weight.detach().new_zeros(module.out_features, 0)}
        if module.bias is not None:
            self.fixed[self.b_key] = module.bias.detach().new_zeros(module.out_features)
        self.h: Any = None
        self.bufs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def output(self, b: int, coef: torch.Tensor) -> torch.Tensor:
        """``P0 + sum_k c_k P_k`` for batch ``b``; ``coef`` is ``(K,)`` or ``(B, K)``."""
        p = self.prods[b]
        if isinstance(coef, (list, tuple)):
            out = p[0]
            for k, c in enumerate(coef):
                out = torch.add(out, p[k + 1], alpha=c)
            return out
        stack = torch.stack(p[1:])  # (K, N, ...)
        return p[0] + torch.tensordot(coef.to(stack.dtype), stack, dims=1)

    def output_into(self, b: int, coef: torch.Tensor) -> torch.Tensor:
        """``P0 + [P1 .. PK] c`` in one ``addmv`` into a reused buffer (exactly P0 at c = 0)."""
        if b not in self.bufs:
            p = self.prods[b]
            mat = torch.stack([q.reshape(-1) for q in p[1:]], dim=1).contiguous()  # (M, K)
            self.bufs[b] = (p[0].reshape(-1), mat, torch.empty_like(p[0]))
        p0, mat, buf = self.bufs[b]
        torch.addmv(p0, mat, coef.to(mat.dtype), out=buf.view(-1))
        return buf

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        def pre(mod: nn.Module, args: tuple) -> tuple:
            return (args[0][..., :0],) + tuple(args[1:])

        def post(mod: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return self.h

        h1 = self.module.register_forward_pre_hook(pre)
        h2 = self.module.register_forward_hook(post)
        try:
            yield
        finally:
            h1.remove()
            h2.remove()


class PointEvaluator:
    """Loss and accuracy of ``model`` at ``theta + coef @ dirs`` over all ``batches``."""

    def __init__(
        self,
        model: nn.Module,
        batches: Batches,
        theta: Mapping[str, torch.Tensor],
        dirs: Sequence[Mapping[str, torch.Tensor]],
        *,
        loss: str | LossFn | None = None,
        mode: str | None = "eval",
        first_layer_trick: bool = True,
        accuracy: bool = True,
    ) -> None:
        self.model, self.mode = model, mode
        self.batches = [(x, y) for x, y in batches]
        y0 = self.batches[0][1]
        self.loss_fn = resolve_loss(loss, y0)
        self.classify = accuracy and task_of(y0) == "classification"
        self.n = sum(len(x) for x, _ in self.batches)
        self.theta = dict(theta)
        self.theta_flat = flatten(self.theta)
        self.D = torch.stack([flatten({k: d[k] for k in self.theta}) for d in dirs])  # (K, n)
        self.K = len(dirs)
        self.buffers = named_buffers(model) if mode == "train" else {}
        self.dirs = [{k: d[k] for k in self.theta} for d in dirs]
        self.moving = [k for k in self.theta if any(bool(d[k].any()) for d in self.dirs)]
        self.trick: _FirstLinear | None = None
        self.plan: StackPlan | None = None
        self.plan_trick = False
        self.base: Params = dict(self.theta)
        if mode != "train":
            with model_mode(model, mode, warn=False):
                if first_layer_trick:
                    self.trick = self._setup_trick(dirs)
                moved = unflatten(self.theta_flat + self.D.sum(0), self.theta)
                self.plan = stack_plan(model, self.theta, moved, self.batches[0][0])
        self.plan_trick = (self.plan is not None and self.trick is not None
                           and self.plan.first_linear_key() == self.trick.w_key)
        if self.plan_trick:  # the first Linear's weights are never read: do not build them
            self.moving = [k for k in self.moving if k not in (self.trick.w_key, self.trick.b_key)]
        # moving tensors as one flat vector: theta_m + D_m^T c is one addmv per point
        self.theta_m = flatten({k: self.theta[k] for k in self.moving})
        self.D_mT = torch.stack([flatten({k: d[k] for k in self.moving}) for d in self.dirs],
                                dim=1).contiguous() if self.moving else None
        if self.plan is not None:
            self.base.update(named_buffers(model))
        self.method_used: str | None = None

    # -- first-layer trick ------------------------------------------------------------------
    @torch.no_grad()
    def _setup_trick(self, dirs: Sequence[Mapping[str, torch.Tensor]]) -> _FirstLinear | None:
        x0 = self.batches[0][0]
        calls = _linear_calls(self.model, self.theta, x0)
        if not calls:
            return None
        name, u0 = calls[0]
        module = self.model.get_submodule(name)
        w_key = f"{name}.weight" if name else "weight"
        if sum(n == name for n, _ in calls) != 1 or w_key not in self.theta:
            return None
        # u must not depend on parameters: compare with u at a moved point
        moved = unflatten(self.theta_flat + self.D.sum(0), self.theta)
        u1 = next(u for n, u in _linear_calls(self.model, moved, x0) if n == name)
        if not torch.equal(u0, u1):
            return None
        b_key = f"{name}.bias" if name else "bias"
        W = self.theta[w_key]
        bias = self.theta.get(b_key, module.bias.detach() if module.bias is not None else None)
        per_point = sum(x.numel() // max(1, x.shape[-1]) for x, _ in self.batches)
        if (self.K + 1) * per_point * W.shape[0] * W.element_size() > _TRICK_BYTES:
            return None
        prods = []
        for x, _ in self.batches:
            u = next(u for n, u in _linear_calls(self.model, self.theta, x) if n == name)
            ps = [F.linear(u, W, bias)]
            for d in dirs:
                db = d.get(b_key) if b_key in self.theta else None
                ps.append(F.linear(u, d[w_key], db))
            prods.append(ps)
        trick = _FirstLinear(name, module, prods)
        # verify once against the plain functional forward at a moved point
        c = torch.full((self.K,), 0.5)
        plain = self._loop_point(c, None)
        fast = self._loop_point(c, trick)
        if abs(plain[0] - fast[0]) > 1e-5 * max(1.0, abs(plain[0])):
            return None
        return trick

    # -- engines ----------------------------------------------------------------------------
    def _params(self, coef: torch.Tensor) -> Params:
        flat = self.theta_flat + coef.to(self.D.dtype) @ self.D
        p = unflatten(flat, self.theta)
        if self.buffers:
            p.update({k: v.clone() for k, v in self.buffers.items()})
        return p

    def _score(self, out: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        loss = self.loss_fn(out, y)
        if not self.classify:
            return float(loss), 0
        both = torch.stack([loss.double(), (out.argmax(-1) == y).sum().double()]).tolist()
        return both[0], int(both[1])

    def _point_params(self, c: list[float]) -> Params:
        """``theta + sum_k c_k d_k`` (unmoved tensors are shared, not copied)."""
        p = dict(self.base)
        if self.moving:
            if not hasattr(self, "theta_m"):  # during set-up, before the flat form exists
                for n in self.moving:
                    t = self.theta[n]
                    for k, ck in enumerate(c):
                        t = torch.add(t, self.dirs[k][n], alpha=ck)
                    p[n] = t
            else:
                flat = torch.addmv(self.theta_m, self.D_mT, torch.tensor(c, dtype=self.D_mT.dtype))
                i = 0
                for n in self.moving:
                    t = self.theta[n]
                    p[n] = flat[i : i + t.numel()].view(t.shape)
                    i += t.numel()
        if self.buffers:
            p.update({k: v.clone() for k, v in self.buffers.items()})
        return p

    @torch.no_grad()
    def _loop_point(self, coef: torch.Tensor, trick: _FirstLinear | None) -> tuple[float, float]:
        c = [float(v) for v in coef]
        p = self._point_params(c)
        total, correct = 0.0, 0
        if self.plan is not None:
            for b, (x, y) in enumerate(self.batches):
                h0 = (trick.output_into(b, coef) if (trick is not None and self.plan_trick)
                      else None)
                lb, cb = self._score(self.plan.forward(p, x, h0, own_h0=True), y)
                total += lb * len(x)
                correct += cb
            return total / self.n, (correct / self.n if self.classify else float("nan"))
        ctx = trick.hooked() if trick is not None else contextlib.nullcontext()
        if trick is not None:
            p.update(trick.fixed)
        with ctx:
            for b, (x, y) in enumerate(self.batches):
                if trick is not None:
                    trick.h = trick.output(b, c)
                    out = functional_call(self.model, p, (x,))
                else:
                    out = functional_call(self.model, p, (x,))
                lb, cb = self._score(out, y)
                total += lb * len(x)
                correct += cb
        return total / self.n, (correct / self.n if self.classify else float("nan"))

    @torch.no_grad()
    def _vmap_points(self, coefs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = coefs.shape[0]
        stacked = self._params(coefs)
        trick = self.trick
        if trick is not None:
            for k in trick.fixed:
                stacked.pop(k, None)
        total = torch.zeros(B, dtype=torch.float64)
        correct = torch.zeros(B, dtype=torch.float64)
        ctx = trick.hooked() if trick is not None else contextlib.nullcontext()
        with ctx:
            for b, (x, y) in enumerate(self.batches):
                if trick is not None:
                    H = trick.output(b, coefs)

                    def one(p: Params, h: torch.Tensor, x: torch.Tensor = x) -> torch.Tensor:
                        trick.h = h
                        return functional_call(self.model, (p, trick.fixed), (x,))

                    out = vmap(one)(stacked, H)
                else:
                    out = vmap(lambda p, x=x: functional_call(self.model, p, (x,)))(stacked)
                try:
                    per = vmap(self.loss_fn, in_dims=(0, None))(out, y)
                except Exception:  # a loss callable that vmap cannot trace
                    per = torch.stack([self.loss_fn(out[i], y) for i in range(B)])
                total += per.double() * len(x)
                if self.classify:
                    correct += (out.argmax(-1) == y).double().sum(-1)
        nan = torch.full((B,), float("nan"), dtype=torch.float64)
        return total / self.n, (correct / self.n if self.classify else nan)

    def evaluate(self, coefs: torch.Tensor, method: str = "loop") -> tuple[list[float], list[float]]:
        """Loss and accuracy at each row of ``coefs (B, K)`` with the named engine."""
        with model_mode(self.model, self.mode, warn=False):
            if method == "vmap":
                lo, ac = self._vmap_points(coefs)
                return lo.tolist(), ac.tolist()
            res = [self._loop_point(c, self.trick) for c in coefs]
            return [r[0] for r in res], [r[1] for r in res]


def run_points(
    ev: PointEvaluator,
    coefs: torch.Tensor,
    *,
    method: str = "auto",
    chunk: int = 25,
    on_chunk: Any = None,
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Evaluate every row of ``coefs`` in chunks; ``on_chunk(index_list, loss, acc)`` after each.

    ``method="auto"`` times the loop on the first chunk. If the whole grid would take longer than
    ``TRIAL_MIN_MS`` that way (vmap's one-time set-up costs seconds), it alternates vmap, loop,
    vmap on the next chunks (after an untimed vmap warm-up) and keeps vmap for the rest only if
    both its timings beat the best loop timing by 20% (CPU time on one thread, wall clock
    otherwise); otherwise, and for grids under ``8 * chunk`` points, it loops.
    Returns ``(loss, acc, timing)`` with ms per point of each engine tried.
    """
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    if ev.mode == "train" and method != "loop":
        method = "loop"  # buffers are updated in place in train mode: vmap cannot batch that
    n = coefs.shape[0]
    loss: list[float] = [float("nan")] * n
    acc: list[float] = [float("nan")] * n
    timing: dict[str, Any] = {"ms_per_point": {}}
    chosen = None if method == "auto" else method
    trials: list[str] = []
    if chosen is None:
        # alternate loop, vmap, loop, vmap on the first chunks (min of two timings each, so one
        # noisy chunk on a shared machine does not decide); too few points: just loop
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
            # vmap's set-up costs seconds: try it only when the loop would take long
            trials = ["vmap", "loop", "vmap"] if dt * n > TRIAL_MIN_MS else []
            if not trials:
                chosen = "loop"
        if chosen is None and not trials:
            # vmap must win clearly in both of its trials: the loop is never slower than the
            # naive loop, so a noisy tie goes to the loop
            chosen = "vmap" if max(trial_ms["vmap"]) < 0.8 * min(trial_ms["loop"]) else "loop"
        for j, i in enumerate(idx):
            loss[i], acc[i] = lo[j], ac[j]
        if on_chunk is not None:
            on_chunk(idx, lo, ac)
        start += len(idx)
    timing["method"] = chosen or next(iter(timing["ms_per_point"]), method)
    timing["wall_ms_per_point"] = (time.perf_counter() - t_all) * 1e3 / max(1, n)
    timing["first_layer_trick"] = ev.trick is not None
    return loss, acc, timing
