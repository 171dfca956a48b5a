"""Train/eval mode handling that always restores every module's own flag."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from torch import nn

from .errors import OptionError

_STOCHASTIC = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_NORM = (nn.modules.batchnorm._BatchNorm,)


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str | None = "eval", *, warn: bool = True,
               restore_attributes: bool = False) -> Iterator[None]:
    """Put ``model`` in ``mode`` ("eval", "train", or None = leave as is) for the body.

    Every submodule's ``training`` flag is restored on exit, exceptions included. In train mode a
    warning says that dropout makes the function random and BatchNorm uses batch statistics.

    ``restore_attributes=True`` (what analyses use) also puts back every plain attribute a
    module's forward rebinds or adds, such as pykan's activation caches (``acts``,
    ``spline_preacts``...): left in place they would hold the analysis' tensors, their autograd
    graphs included, and make the model impossible to ``deepcopy``.
    """
    if mode not in ("eval", "train", None):
        raise OptionError(f"mode must be 'eval', 'train' or None, got {mode!r}")
    flags = [(m, m.training) for m in model.modules()]
    saved = [(m, dict(m.__dict__)) for m in model.modules()] if restore_attributes else []
    try:
        if mode is not None:
            model.train(mode == "train")
        if warn and mode == "train":
            kinds = {type(m).__name__ for m in model.modules() if isinstance(m, _STOCHASTIC + _NORM)}
            if kinds:
                warnings.warn(
                    f"model is analysed in train mode and has {sorted(kinds)}: dropout makes the "
                    "loss random and BatchNorm uses batch statistics; pass mode='eval' to avoid it",
                    stacklevel=3,
                )
        yield
    finally:
        for m, t in flags:
            m.training = t
        for m, before in saved:
            now = m.__dict__
            for k in [k for k in now if k not in before]:
                del now[k]
            for k, v in before.items():
                if now.get(k, _MISSING) is not v:
                    now[k] = v


_MISSING = object()
