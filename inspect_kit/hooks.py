"""Recording what modules see and produce, with hooks that never leak.

:func:`capture` is a context manager: it registers forward hooks on the selected modules, records
every call (a module used twice in one forward is recorded twice, in call order), and removes every
handle on exit, also when the body raises. Selection is by exact name, glob pattern on the
qualified module name, module type, or a predicate ``(name, module) -> bool``.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> with capture(net, nn.Linear, inputs=True) as rec:
...     _ = net(torch.randn(5, 3))
>>> rec.names
['0', '2']
>>> rec.output("2").shape
torch.Size([5, 2])
>>> len(net[0]._forward_hooks)
0
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from fnmatch import fnmatchcase
from typing import Any

import torch
from torch import nn

from .errors import OptionError

Selector = str | type | tuple | Iterable[str] | Callable[[str, nn.Module], bool] | None


@dataclasses.dataclass
class Call:
    """One recorded call: positional inputs (a tuple) and the output (as the module returned it)."""

    inputs: tuple[Any, ...] | None
    output: Any


def _convert(obj: Any, detach: bool, device: str | None) -> Any:
    if isinstance(obj, torch.Tensor):
        t = obj.detach() if detach else obj
        return t.to(device) if device is not None else t
    if isinstance(obj, tuple):
        return tuple(_convert(o, detach, device) for o in obj)
    if isinstance(obj, list):
        return [_convert(o, detach, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _convert(v, detach, device) for k, v in obj.items()}
    return obj


def select_modules(model: nn.Module, select: Selector) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs matched by ``select`` (see :func:`capture`), in model order."""
    named = list(model.named_modules())
    if select is None:
        pred: Callable[[str, nn.Module], bool] = lambda n, m: n != ""  # noqa: E731
    elif isinstance(select, type) or (
        isinstance(select, tuple) and select and all(isinstance(s, type) for s in select)
    ):
        pred = lambda n, m: isinstance(m, select)  # noqa: E731
    elif isinstance(select, str):
        pred = lambda n, m: n == select or (n != "" and fnmatchcase(n, select))  # noqa: E731
    elif callable(select):
        pred = select
    else:
        pats = list(select)
        if not all(isinstance(p, str) for p in pats):
            raise OptionError("select must be a name, a glob, a list of them, a type or a predicate")
        pred = lambda n, m: any(n == p or (n != "" and fnmatchcase(n, p)) for p in pats)  # noqa: E731
    chosen = [(n, m) for n, m in named if pred(n, m)]
    if not chosen:
        names = [n for n, _ in named if n][:12]
        raise OptionError(
            f"select={select!r} matched no module; some module names are: {names}"
        )
    return chosen


class Recording:
    """What :func:`capture` recorded: ``rec[name]`` is the list of :class:`Call` of that module."""

    def __init__(self, names: list[str]):
        self.calls: dict[str, list[Call]] = {n: [] for n in names}

    @property
    def names(self) -> list[str]:
        return list(self.calls)

    def __getitem__(self, name: str) -> list[Call]:
        return self.calls[name]

    def __contains__(self, name: str) -> bool:
        return name in self.calls

    def _one(self, name: str, call: int) -> Call:
        calls = self.calls[name]
        if not calls:
            raise OptionError(f"module {name!r} was not called inside the capture")
        return calls[call]

    def output(self, name: str, call: int = -1) -> Any:
        """The output of one call (the last by default)."""
        return self._one(name, call).output

    def input(self, name: str, call: int = -1, index: int = 0) -> Any:
        """Positional input ``index`` of one call (needs ``inputs=True``)."""
        c = self._one(name, call)
        if c.inputs is None:
            raise OptionError("inputs were not recorded; use capture(..., inputs=True)")
        return c.inputs[index]

    def outputs(self, name: str) -> list[Any]:
        return [c.output for c in self.calls[name]]

    def inputs(self, name: str, index: int = 0) -> list[Any]:
        return [c.inputs[index] for c in self.calls[name] if c.inputs is not None]

    def clear(self) -> None:
        for v in self.calls.values():
            v.clear()


@contextlib.contextmanager
def capture(
    model: nn.Module,
    select: Selector = None,
    *,
    inputs: bool = False,
    outputs: bool = True,
    detach: bool = True,
    device: str | None = "cpu",
) -> Iterator[Recording]:
    """Record inputs and/or outputs of the selected modules while the body runs.

    Args:
        model: any ``nn.Module``.
        select: a module name, a glob (``"layers.*"``), a list of those, a module type (or tuple
            of types), or a predicate ``(name, module) -> bool``. ``None`` selects every
            submodule. Globs never match the root module (name ``""``); select it by ``""``.
            A selection that matches nothing raises and names some modules.
        inputs / outputs: what to record.
        detach: detach recorded tensors from the graph (default); ``False`` keeps them
            differentiable.
        device: move recorded tensors there ("cpu" by default; ``None`` leaves them).

    Every call of a selected module is recorded in order. All hooks are removed on exit.
    """
    chosen = select_modules(model, select)
    rec = Recording([n for n, _ in chosen])
    handles = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            rec.calls[name].append(
                Call(
                    inputs=_convert(args, detach, device) if inputs else None,
                    output=_convert(out, detach, device) if outputs else None,
                )
            )

        return hook

    try:
        for name, module in chosen:
            handles.append(module.register_forward_hook(make_hook(name)))
        yield rec
    finally:
        for h in handles:
            h.remove()
