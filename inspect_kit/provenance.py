"""What every analysis entry point records and accepts: options, seed, seconds, versions.

:func:`entry_point` wraps a public analysis function ``(model, data, *, options) -> Result``:

* deprecated spellings of options (``mode=`` for ``model_mode=``, ...) are accepted for one
  release with a ``FutureWarning`` naming the new one;
* the call is timed, and the Result's ``provenance`` field gets the analysis name, every option
  as called (JSON-safe: callables by name, tensors by shape), the seed, the seconds and the
  library versions, in the same layout for every analysis, so ``Result.load`` of any file
  written by the command line or by ``Result.save`` gives them back.

>>> import dataclasses
>>> from inspect_kit.results import Result
>>> @dataclasses.dataclass(frozen=True)
... class Toy(Result):
...     value: float
>>> @entry_point("toy", renamed={"mode": "model_mode"})
... def toy(model, data, *, model_mode="eval", seed=0):
...     return Toy(value=1.0)
>>> r = toy(None, None, seed=3)
>>> r.provenance["analysis"], r.provenance["seed"], r.provenance["options"]["model_mode"]
('toy', 3, 'eval')
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any, TypeVar

from .errors import OptionError

F = TypeVar("F", bound=Callable[..., Any])

#: arguments that are inputs, not options (never recorded)
INPUTS = ("model", "model_a", "model_b", "data", "source", "target", "trajectory")


def versions(tools: Sequence[str] = ()) -> dict[str, str]:
    """Versions of Python, inspect-kit, torch, numpy and the named distributions."""
    out = {"python": platform.python_version()}
    for dist in ("inspect-kit", "torch", "numpy", *tools):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def describe(value: Any) -> Any:
    """A JSON-safe description of an option value (what a reader needs to rerun the call)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [describe(v) for v in value]
    try:
        import torch

        if isinstance(value, torch.dtype):
            return str(value).removeprefix("torch.")
        if isinstance(value, torch.device):
            return str(value)
        if isinstance(value, torch.Tensor):
            return f"<tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}>"
        if isinstance(value, torch.nn.Module):
            return f"<{type(value).__name__}>"
    except ImportError:  # pragma: no cover
        pass
    if hasattr(value, "__fspath__"):
        return str(value)
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__name__
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def entry_point(name: str, *, renamed: Mapping[str, str] | None = None,
                tools: Sequence[str] = ()) -> Callable[[F], F]:
    """Decorate an analysis entry point (see the module docstring).

    ``renamed``: deprecated keyword -> its new name. ``tools``: distributions whose versions
    are recorded (the reference tools the analysis can run beside its own numbers).
    """
    renamed = dict(renamed or {})

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise OptionError(f"pass {new}= only; {old}= is its deprecated spelling")
                    warnings.warn(f"{name}({old}=...) is deprecated and will be removed; use "
                                  f"{new}=...", FutureWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise OptionError(f"{name}(): {exc}") from None
            bound.apply_defaults()
            start = time.perf_counter()
            result = fn(*bound.args, **bound.kwargs)
            seconds = time.perf_counter() - start
            options = {k: describe(v) for k, v in bound.arguments.items() if k not in INPUTS}
            own = dict(getattr(result, "provenance", None) or {})
            record = {"analysis": name, "options": options,
                      "seed": options.get("seed"), "seconds": seconds,
                      "versions": versions(tools),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(
                          time.time() - seconds))}
            record.update(own)  # the analysis may add what it resolved (view, engine, ...)
            if dataclasses.is_dataclass(result) and hasattr(result, "provenance"):
                return dataclasses.replace(result, provenance=record)
            return result

        return wrapper  # type: ignore[return-value]

    return wrap
