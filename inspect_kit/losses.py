"""Loss functions by name: what ``loss=`` means everywhere in the kit.

Every loss returns the *mean* over a batch (batches are then weighted by their size):

* ``"cross_entropy"`` (``"ce"``): ``mean_i -log softmax(z_i)[y_i]``. Sequence outputs
  ``(N, T, C)`` with targets ``(N, T)`` (token classification, masked LM) are flattened to tokens,
  and targets equal to ``-100`` (HuggingFace's ignore index: padding, unmasked tokens) are left
  out of the mean.
* ``"causal_lm"``: next-token cross-entropy with the usual shift, logits ``z[:, :-1]`` against
  labels ``y[:, 1:]`` (what HuggingFace's ``*ForCausalLM`` models compute from ``labels``),
  ignore index ``-100``.
* ``"mse"``: ``mean((z - y)^2)`` over every element (targets reshaped to the output).
* ``"model"``: the model's own ``.loss`` when it is given the targets as ``labels=`` (HF
  models); handled by the model view, which calls the model with the labels.
* any callable ``(output, target) -> scalar batch mean``.

``None`` picks by task: cross-entropy for integer targets, MSE for floating ones, and
``causal_lm`` for causal language models (:func:`is_causal_lm`).

The named losses check the targets against the output first (shapes, class labels in range),
so data that does not fit the model is a :class:`~inspect_kit.errors.DataError` (exit 2 on the
command line) saying what was expected, not a torch error from deep inside an analysis.

>>> import torch
>>> z = torch.zeros(2, 3, 5); y = torch.tensor([[1, 2, -100], [0, -100, -100]])
>>> round(float(cross_entropy(z, y)), 6) == round(float(torch.log(torch.tensor(5.0))), 6)
True
>>> round(float(causal_lm(z, y)), 6) == round(float(torch.log(torch.tensor(5.0))), 6)
True
>>> try:
...     cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 5]))
... except DataError as exc:
...     print(exc)
class labels outside [0, 3) for a model with 3 outputs; check the data's targets or the model
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .errors import DataError, OptionError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
IGNORE_INDEX = -100
NAMES = ("cross_entropy", "ce", "causal_lm", "mse", "model")


def task_of(y: torch.Tensor) -> str:
    """'classification' for integer targets, 'regression' for floating targets."""
    return "regression" if torch.is_floating_point(y) else "classification"


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; ``(N, T, C)`` outputs against ``(N, T)`` targets are per token."""
    if out.dim() >= 3 and y.dim() == out.dim() - 1 and not y.is_floating_point():
        _check_labels(y, tuple(out.shape[:-1]), out.shape[-1], out.shape)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                               ignore_index=IGNORE_INDEX)
    if y.is_floating_point():
        if y.shape != out.shape:
            raise DataError(f"cross-entropy with float targets needs probabilities of the "
                            f"output's shape {tuple(out.shape)}, got {tuple(y.shape)}; for "
                            "regression use --loss mse")
    else:
        want = tuple(out.shape[:1]) + tuple(out.shape[2:]) if out.dim() > 1 else ()
        _check_labels(y, want, out.shape[1] if out.dim() > 1 else out.shape[0], out.shape)
    return F.cross_entropy(out, y, ignore_index=IGNORE_INDEX)


def _check_labels(y: torch.Tensor, want: tuple[int, ...], C: int, out_shape: Any) -> None:
    """Class labels of shape ``want`` in ``[0, C)`` or the ignore index, else DataError."""
    if tuple(y.shape) != want:
        raise DataError(f"the class labels have shape {tuple(y.shape)} but the model outputs "
                        f"{tuple(out_shape)} (labels of shape {want} expected)")
    if bool(((y >= C) | ((y < 0) & (y != IGNORE_INDEX))).any()):
        raise DataError(f"class labels outside [0, {C}) for a model with {C} outputs; check the "
                        "data's targets or the model")


def causal_lm(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: ``out[:, :-1]`` predicts ``y[:, 1:]`` (ignore index -100)."""
    if out.dim() != 3 or y.dim() != 2 or y.shape != out.shape[:2]:
        raise OptionError(f"loss='causal_lm' needs logits (N, T, V) and labels (N, T); got "
                          f"{tuple(out.shape)} and {tuple(y.shape)}")
    return F.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), y[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (targets reshaped to the output; as many values
    as the output, else :class:`DataError`)."""
    if y.numel() != out.numel():
        raise DataError(f"regression targets of shape {tuple(y.shape)} do not match the model's "
                        f"output {tuple(out.shape)}; check the data or --loss")
    return F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def is_causal_lm(model: Any) -> bool:
    """A HuggingFace causal language model (``*ForCausalLM``, ``*LMHeadModel``, or a config
    with ``is_decoder`` and an LM head)."""
    name = type(model).__name__
    return name.endswith("ForCausalLM") or name.endswith("LMHeadModel")


def resolve_loss(loss: str | LossFn | None, y: torch.Tensor, model: Any = None) -> LossFn:
    """The loss callable ``(output, target) -> mean loss`` (see the module docstring)."""
    if callable(loss):
        return loss
    if loss is None:
        if model is not None and is_causal_lm(model) and not torch.is_floating_point(y):
            loss = "causal_lm"
        else:
            loss = "cross_entropy" if task_of(y) == "classification" else "mse"
    if loss in ("cross_entropy", "ce"):
        return cross_entropy
    if loss == "causal_lm":
        return causal_lm
    if loss == "mse":
        return mse
    raise OptionError(f"loss must be one of {NAMES} or a callable, got {loss!r}")
