"""KAN edge extraction: one adapter per KAN family behind :class:`KANAdapter`.

>>> from inspect_kit.zoo.kan import KAN
>>> import torch
>>> model = KAN([2, 3, 1], seed=0)
>>> adapter = adapter_for(model)
>>> adapter.family, adapter.widths
('zoo', [2, 3, 1])
>>> x = torch.rand(5, 2)
>>> bool(torch.allclose(adapter.forward_from_edges(x), model(x), atol=1e-6))
True

Families: the zoo KAN (by class), pykan ``MultKAN``/``KAN`` (by class; pykan is imported only for
models from the ``kan`` package), efficient-kan ``KANLinear`` stacks (by the state-dict layout
``base_weight``/``spline_weight``/``spline_scaler``/``grid``) and FastKAN RBF layers (by the layout
``rbf.grid``/``spline_linear``/``base_linear``/``layernorm``).
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedModelError
from .protocol import KANAdapter

SUPPORTED = ("zoo KAN (inspect_kit.zoo.kan.KAN)", "pykan MultKAN/KAN",
             "efficient-kan KANLinear stacks", "FastKAN RBF layers")


def adapter_for(model: Any) -> KANAdapter:
    """The adapter for ``model`` (an adapter is returned as is)."""
    if isinstance(model, KANAdapter):
        return model
    from ..zoo.kan import KAN as ZooKAN

    if isinstance(model, ZooKAN):
        from .zoo import ZooKANAdapter

        return ZooKANAdapter(model)
    from .pykan import PykanAdapter, is_pykan

    if is_pykan(model):
        return PykanAdapter(model)
    from torch import nn

    if isinstance(model, nn.Module):
        from .efficient import EfficientKANAdapter, efficient_layers

        if efficient_layers(model):
            return EfficientKANAdapter(model)
        from .fastkan import FastKANAdapter, fastkan_layers

        if fastkan_layers(model):
            return FastKANAdapter(model)
    raise UnsupportedModelError(
        f"{type(model).__name__} is not a KAN this kit can read; supported: {', '.join(SUPPORTED)}. "
        "For MLPs and learnable activations use inspect_kit.kan.activations")


__all__ = ["KANAdapter", "SUPPORTED", "adapter_for"]
