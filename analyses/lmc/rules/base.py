"""Helpers shared by the tracer's rules: tensors inside nested arguments, argument lookup,
negative dims, and broadcasting of axis variables."""

from __future__ import annotations

from typing import Any

import torch


def tensors_in(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in tensors_in(o)]
    return []


def _dim(d: int, n: int) -> int:
    return d + n if d < 0 else d


def _arg(args: tuple, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def _broadcast(tr: Any, inputs: list[torch.Tensor], shape: torch.Size) -> list[int]:
    n = len(shape)
    out = []
    for k in range(n):
        size = shape[k]
        joined = None
        for t in inputs:
            j = k - (n - t.dim())
            if j < 0 or t.shape[j] != size:
                continue
            v = tr.vars(t)[j]
            joined = v if joined is None else tr.sets.union(joined, v)
        out.append(joined if joined is not None else tr.sets.new(size))
    return out

