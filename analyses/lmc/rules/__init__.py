"""Per-operation rules of the axis tracer (:mod:`analyses.lmc.tracer`), one module per op family.

A rule ``rule(tracer, name, args, kwargs, out)`` reads the axis variables of the inputs
(``tracer.vars``), unifies or fixes them (``tracer.sets``) and records the variables of the
output (``tracer.set``). A rule that meets a form it does not understand raises, and the tracer
then fixes every axis the call touched (and reports the function as unknown).

* :mod:`.elementwise`: unary maps, broadcasting binary ops (residual additions), reductions;
* :mod:`.shape`: reshape/view/flatten, transposes, indexing, cat/split, creation;
* :mod:`.contract`: linear, matmul, einsum, attention, embedding, layer norm, PReLU;
* :mod:`.spatial`: convolutions, batch/instance/group norm, pooling, resampling, padding.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import tensors_in
from .contract import _einsum, _embedding, _layer_norm, _linear, _matmul, _prelu, _sdpa
from .elementwise import BINARY, ORDER_REDUCE, REDUCE, UNARY, _binary, _reduce, _unary
from .shape import (
    SHAPE,
    _cat,
    _creation,
    _expand,
    _getitem,
    _permute,
    _reshape,
    _split,
    _squeeze,
    _transpose,
    _unsqueeze,
)
from .spatial import SPATIAL_RULES

RULES: dict[str, Callable[..., None]] = {
    "linear": _linear, "matmul": _matmul, "__matmul__": _matmul, "__rmatmul__": _matmul,
    "mm": _matmul, "bmm": _matmul, "einsum": _einsum, "layer_norm": _layer_norm,
    "scaled_dot_product_attention": _sdpa, "prelu": _prelu,
    "embedding": _embedding, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "transpose": _transpose, "swapaxes": _transpose, "swapdims": _transpose, "t": _transpose,
    "T": _transpose, "mT": _transpose, "permute": _permute, "expand": _expand,
    "expand_as": _expand, "broadcast_to": _expand, "__getitem__": _getitem, "cat": _cat,
    "concat": _cat, "concatenate": _cat, "stack": _cat, "chunk": _split, "split": _split,
    "tensor_split": _split, "unbind": _split, "arange": _creation, "tensor": _creation,
    "linspace": _creation, "rand": _creation, "randn": _creation, "as_tensor": _creation,
    **SPATIAL_RULES,
}


def rule_for(name: str) -> Callable[..., None] | None:
    """The rule for a torch function name, or None (then every touched axis is fixed)."""
    rule = RULES.get(name)
    if rule is not None:
        return rule
    if name in UNARY:
        return _unary
    if name in BINARY:
        return _binary
    if name in REDUCE or name in ORDER_REDUCE:
        return _reduce
    if name in SHAPE:
        return _reshape
    return None


__all__ = ["RULES", "rule_for", "tensors_in"]
