"""Reference model zoo: a B-spline KAN, an MLP, a tiny ViT (softmax or Fourier-KArAt attention),
modular-addition networks (an MLP on embeddings or a one-layer transformer, the grokking testbed).

:func:`build` makes a model by zoo name and records the name and kwargs on the model (attribute
``zoo_spec``), so a kit checkpoint can rebuild it without further arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ..errors import ModelSpecError

#: zoo name -> "module:class" (imported lazily)
ZOO: dict[str, str] = {
    "kan": "inspect_kit.zoo.kan:KAN",
    "mlp": "inspect_kit.zoo.mlp:MLP",
    "vit": "inspect_kit.zoo.vit:TinyViT",
    "modadd": "inspect_kit.zoo.modadd:ModAddNet",
}

SPEC_ATTR = "zoo_spec"


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build zoo model ``name`` with ``kwargs``; the model remembers both in ``model.zoo_spec``."""
    if name not in ZOO:
        raise ModelSpecError(f"unknown zoo model {name!r}; known: {', '.join(sorted(ZOO))}")
    mod_name, _, cls_name = ZOO[name].partition(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"cannot build zoo:{name} with kwargs {kwargs}: {exc}") from exc
    object.__setattr__(model, SPEC_ATTR, {"name": name, "kwargs": dict(kwargs)})
    return model


def spec_of(model: nn.Module) -> dict[str, Any] | None:
    """The ``{"name", "kwargs"}`` a zoo model was built with, or None for foreign models."""
    return getattr(model, SPEC_ATTR, None)
