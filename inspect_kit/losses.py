"""Losses by name, with the targets checked against the model's output first.

``resolve_loss(None, y)`` picks by task (cross-entropy for integer targets, mean squared error
otherwise). The named losses check shapes (and class-label range) before calling torch, so a
data set that does not fit the model is a :class:`~inspect_kit.errors.DataError` (exit 2 on the
command line) that says what was expected, not a torch error from deep inside an analysis.

>>> import torch
>>> mse(torch.zeros(3, 1), torch.ones(3)).item()
1.0
>>> try:
...     cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 5]))
... except DataError as exc:
...     print(exc)
class labels outside [0, 3) for a model with 3 outputs; check the data's targets or the model
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import DataError, OptionError


def task_of(y: torch.Tensor) -> str:
    """'classification' for integer targets, 'regression' for floating targets."""
    return "regression" if torch.is_floating_point(y) else "classification"


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_loss(loss: str | LossFn | None, y: torch.Tensor) -> LossFn:
    """The loss callable ``(output, target) -> mean loss``.

    ``None`` picks by task: cross-entropy for integer targets, mean squared error otherwise.
    Strings "cross_entropy"/"ce" and "mse" name those two; any callable is used as given and must
    return the *mean* over the batch (batches are weighted by their size when summed).
    """
    if callable(loss):
        return loss
    if loss is None:
        loss = "cross_entropy" if task_of(y) == "classification" else "mse"
    if loss in ("cross_entropy", "ce"):
        return cross_entropy
    if loss == "mse":
        return mse
    raise OptionError(f"loss must be 'cross_entropy', 'mse' or a callable, got {loss!r}")


def cross_entropy(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy`` after checking that the targets fit the output: class labels of
    shape ``out.shape[:1] + out.shape[2:]`` in ``[0, C)`` (or -100, ignored), or class
    probabilities of ``out``'s shape; otherwise :class:`DataError` (exit 2), not a torch error.
    """
    C = out.shape[1] if out.dim() > 1 else out.shape[0]
    if t.is_floating_point():
        if t.shape != out.shape:
            raise DataError(f"cross-entropy with float targets needs probabilities of the "
                            f"output's shape {tuple(out.shape)}, got {tuple(t.shape)}; for "
                            "regression use --loss mse")
    else:
        want = tuple(out.shape[:1]) + tuple(out.shape[2:]) if out.dim() > 1 else ()
        if tuple(t.shape) != want:
            raise DataError(f"the class labels have shape {tuple(t.shape)} but the model "
                            f"outputs {tuple(out.shape)} (labels of shape {want} expected)")
        if bool(((t >= C) | ((t < 0) & (t != -100))).any()):
            raise DataError(f"class labels outside [0, {C}) for a model with {C} outputs; check "
                            "the data's targets or the model")
    return F.cross_entropy(out, t)


def mse(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean squared error; targets must have as many values as the output
    (:class:`DataError` otherwise)."""
    if t.numel() != out.numel():
        raise DataError(f"regression targets of shape {tuple(t.shape)} do not match the model's "
                        f"output {tuple(out.shape)}; check the data or --loss")
    return F.mse_loss(out, t.reshape(out.shape).to(out.dtype))
