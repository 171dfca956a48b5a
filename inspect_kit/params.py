"""Parameters as functional vectors.

The model's parameters are handled as a dict ``name -> tensor`` (what
``torch.func.functional_call`` takes) or as one flat vector ``theta`` (what curvature and
landscape code works on). Evaluating the model at other parameter values is the model view's job
(:mod:`inspect_kit.view`): ``functional_call`` on separate tensors, never in-place edits.

Per-filter norms follow Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets"): a
filter is one slice along the first (output) axis, ``||W[i, ...]||_F``; a one-dimensional tensor
(bias, norm scale) counts as a single filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase

import torch
from torch import nn

from .errors import ArchitectureMismatchError, NonFiniteError

Params = dict[str, torch.Tensor]


def named_params(
    model: nn.Module,
    *,
    trainable_only: bool = True,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
) -> Params:
    """Detached parameter tensors by name (shared storage; never write to them).

    ``include`` selects parameters by glob pattern(s) on the name or by a predicate
    ``(name, tensor) -> bool``. Frozen parameters are left out unless ``trainable_only=False``.
    """
    if include is None:
        keep: Callable[[str, torch.Tensor], bool] = lambda n, p: True  # noqa: E731
    elif callable(include):
        keep = include
    else:
        pats = [include] if isinstance(include, str) else list(include)
        keep = lambda n, p: any(fnmatchcase(n, pat) for pat in pats)  # noqa: E731
    return {
        n: p.detach()
        for n, p in model.named_parameters()
        if (p.requires_grad or not trainable_only) and keep(n, p)
    }


def named_buffers(model: nn.Module) -> Params:
    """Detached buffers by name."""
    return {n: b.detach() for n, b in model.named_buffers()}


def flatten(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors (in dict order) into one flat vector."""
    if not params:
        return torch.zeros(0)
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    """Split a flat vector into tensors shaped like ``like`` (views into ``vector``).

    A leading batch dimension is kept: a ``(B, n)`` input gives tensors of shape ``(B, *shape)``.
    """
    n = sum(t.numel() for t in like.values())
    if vector.shape[-1] != n:
        raise ArchitectureMismatchError(
            f"vector has {vector.shape[-1]} entries but the parameters have {n}"
        )
    lead = vector.shape[:-1]
    out: Params = {}
    i = 0
    for name, t in like.items():
        k = t.numel()
        out[name] = vector[..., i : i + k].reshape(*lead, *t.shape)
        i += k
    return out


def filter_norms(params: Mapping[str, torch.Tensor]) -> Params:
    """Frobenius norm of every filter: ``||W[i, ...]||`` per output slice; 1-D tensors: one norm."""
    out: Params = {}
    for name, t in params.items():
        if t.dim() <= 1:
            out[name] = t.norm().reshape(1)
        else:
            out[name] = t.reshape(t.shape[0], -1).norm(dim=1)
    return out


def check_finite(params: Mapping[str, torch.Tensor], what: str = "model") -> None:
    """Raise :class:`NonFiniteError` naming the first tensor holding NaN or inf."""
    for name, t in params.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise NonFiniteError(
                f"{what} parameter {name!r} contains NaN or inf; fix or retrain the checkpoint"
            )


def same_structure(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`ArchitectureMismatchError` naming the first tensor that differs."""
    for name in list(a) + [k for k in b if k not in a]:
        if name not in a or name not in b:
            side = "first" if name not in a else "second"
            raise ArchitectureMismatchError(f"tensor {name!r} is missing from the {side} model")
        if a[name].shape != b[name].shape:
            raise ArchitectureMismatchError(
                f"tensor {name!r} has shape {tuple(a[name].shape)} in the first model and "
                f"{tuple(b[name].shape)} in the second; the checkpoints must share an architecture"
            )
