"""Per-channel statistics of modules over a model view's data, and the renormalisation pass that
REPAIR and BatchNorm RESET run on (:mod:`analyses.lmc.repair`).

A *channel* of a module's output is dim 1 for convolutions and BatchNorm (``(N, C, *spatial)``)
and the last dim otherwise (``Linear``, KAN layers); its statistics pool every sample and every
spatial position. Moments are accumulated batch by batch in float64 (Chan et al.'s pairwise
update of mean and sum of squared deviations, so many batches give the full-data values):

    n = n_1 + n_2,  mean = mean_1 + (mean_2 - mean_1) n_2 / n,
    M2 = M2_1 + M2_2 + (mean_2 - mean_1)^2 n_1 n_2 / n.

:func:`renormalize` fixes modules one after another in call order, each measured on the data
*after* the earlier ones were fixed (what REPAIR and RESET need). On one batch that is one
forward: a hook measures the module, writes its new tensors into the state and replaces its
output by the fixed one, so later modules see the fixed network. On several batches a module's
statistics need every batch before anything downstream may run, so each module gets its own
pass, stopped right after that module.

Hooks are registered on the view's model for the duration of a pass and always removed.

>>> m = Moments(); m.add(torch.tensor([[1.0], [3.0]]), -1); m.add(torch.tensor([[5.0]]), -1)
>>> m.n, float(m.mean[0]), float(m.var()[0]), float(m.var(unbiased=True)[0])
(3, 3.0, 2.6666666666666665, 4.0)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

Apply = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Moments:
    """Running count, mean and sum of squared deviations per channel (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, z: torch.Tensor, dim: int) -> None:
        """Add the values of ``z`` (channels along ``dim``, everything else pooled)."""
        dims = [d for d in range(z.dim()) if d != dim % z.dim()]
        n = z.numel() // z.shape[dim]
        mean = z.sum(dims, dtype=torch.float64) / n
        shape = [1] * z.dim()
        shape[dim] = -1
        m2 = ((z - mean.reshape(shape).to(z.dtype)) ** 2).sum(dims, dtype=torch.float64)
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        assert self.mean is not None and self.m2 is not None
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.n = total

    def var(self, unbiased: bool = False) -> torch.Tensor:
        assert self.m2 is not None
        return self.m2 / max(self.n - (1 if unbiased else 0), 1)

    def std(self) -> torch.Tensor:
        return self.var().sqrt()


def channel_dim(module: nn.Module) -> int:
    """Dim of a module's output channels: 1 for convolutions and BatchNorm, else the last."""
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)):
        return 1
    return -1


@contextlib.contextmanager
def hooked(model: nn.Module, hooks: Mapping[str, Callable[..., Any]]) -> Iterator[None]:
    """Forward hooks ``{module name: hook}`` on ``model`` for the ``with`` body, then removed."""
    modules = dict(model.named_modules())
    handles = []
    try:
        for name, fn in hooks.items():
            handles.append(modules[name].register_forward_hook(fn))
        yield
    finally:
        for h in handles:
            h.remove()


def _full(view: Any, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    full = dict(view.state)
    full.update(state)
    return full


@torch.no_grad()
def call_order(view: Any, names: list[str]) -> list[str]:
    """The modules among ``names`` called exactly once per forward, in call order (one forward
    on the first two samples)."""
    calls: list[str] = []
    b = view.batches[0]
    b = b.take(torch.arange(2)) if b.n > 2 else b

    def rec(name: str) -> Callable[..., None]:
        return lambda *_: calls.append(name)

    with view.mode(), hooked(view.model, {n: rec(n) for n in names}):
        view.call(view.state, b)
    return [n for i, n in enumerate(calls) if calls.count(n) == 1 and n not in calls[:i]]


@torch.no_grad()
def output_moments(view: Any, state: Mapping[str, torch.Tensor], names: list[str]
                   ) -> dict[str, Moments]:
    """Per-channel moments of each module's output over the view's data, model at ``state``."""
    mods = dict(view.model.named_modules())
    acc = {n: Moments() for n in names}

    def rec(name: str) -> Callable[..., None]:
        def fn(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            acc[name].add(out.detach(), channel_dim(mods[name]))
        return fn

    full = _full(view, state)
    with view.mode(), hooked(view.model, {n: rec(n) for n in names}):
        for b in view.batches:
            view.call(full, b)
    return acc


@dataclasses.dataclass
class Step:
    """One module to fix: measure ``source`` ("input" or "output") moments along ``dim``, then
    ``fix(moments)`` writes the module's new tensors into the state and returns the map
    ``(input, output) -> fixed output`` for the rest of a one-batch pass."""

    name: str
    source: str
    dim: int
    fix: Callable[[Moments], Apply]


class _Stop(Exception):
    """Ends a measuring pass once its module has been seen."""


@torch.no_grad()
def renormalize(view: Any, state: dict[str, torch.Tensor], steps: list[Step]) -> None:
    """Run ``steps`` (in call order) on the view's data; ``state`` is updated in place."""
    if not steps:
        return
    if len(view.batches) == 1:
        def hook(step: Step) -> Callable[..., torch.Tensor]:
            def fn(_m: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor:
                m = Moments()
                m.add(inp[0] if step.source == "input" else out, step.dim)
                return step.fix(m)(inp[0], out)
            return fn

        full = _full(view, state)
        with view.mode(), hooked(view.model, {s.name: hook(s) for s in steps}):
            view.call(full, view.batches[0])
        return
    for step in steps:
        m = Moments()

        def fn(_m: nn.Module, inp: tuple, out: torch.Tensor, step: Step = step,
               m: Moments = m) -> None:
            m.add(inp[0] if step.source == "input" else out, step.dim)
            raise _Stop

        full = _full(view, state)
        with view.mode(), hooked(view.model, {step.name: fn}):
            for b in view.batches:
                try:
                    view.call(full, b)
                except _Stop:
                    pass
        step.fix(m)
