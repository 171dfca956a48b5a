"""Model specs: ``zoo:NAME``, ``package.module:factory`` or ``path/to/file.py:factory``.

:func:`resolve_factory` imports what a spec names (once: a module is never imported while a
shape-only model is being built on the meta device) and :func:`call_factory` calls it with
keyword arguments; :func:`model_from_spec` does both.

>>> model_from_spec("torch.nn:Linear", {"in_features": 2, "out_features": 1})
Linear(in_features=2, out_features=1, bias=True)
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from . import zoo
from .errors import ModelSpecError, first_line


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``zoo:NAME``, ``package.module:factory`` or ``path/file.py:factory``
    (modules are imported here, once, never under the shape-only build)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelSpecError(
            f"model spec {spec!r} must be 'zoo:NAME', 'package.module:factory' or "
            "'path/to/file.py:factory'"
        )
    head, _, attr = spec.rpartition(":")
    if head == "zoo":
        if attr not in zoo.ZOO:
            raise ModelSpecError(f"unknown zoo model {attr!r}; known: {', '.join(sorted(zoo.ZOO))}")
        importlib.import_module(zoo.ZOO[attr].partition(":")[0])
        return lambda **kw: zoo.build(attr, **kw)
    if head.endswith(".py"):
        file = Path(head)
        if not file.exists():
            raise ModelSpecError(f"model file {file} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"_inspect_kit_user_{file.stem}", file)
        if mod_spec is None or mod_spec.loader is None:
            raise ModelSpecError(f"cannot import model file {file}")
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelSpecError(f"importing {file} failed: {first_line(exc)}") from exc
    else:
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise ModelSpecError(f"cannot import module {head!r} of model spec {spec!r}: "
                                 f"{first_line(exc)}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelSpecError(f"{head} has no callable {attr!r} (model spec {spec!r})")
    return factory


def call_factory(factory: Callable[..., Any], spec: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"calling {spec} with kwargs {kwargs} failed: "
                             f"{first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def model_from_spec(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build a model from ``zoo:NAME``, ``package.module:factory`` or ``path/file.py:factory``."""
    return call_factory(resolve_factory(spec), spec, dict(kwargs or {}))
