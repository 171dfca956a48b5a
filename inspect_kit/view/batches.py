"""Batches as the model view sees them: model inputs (positional and keyword), a target, a size.

Every data form the kit accepts becomes a list of :class:`Batch`:

* ``(X, y)`` pairs, DataLoaders and iterables of ``(x, y)`` batches: ``args=(x,)``;
* dict batches (a HuggingFace ``BatchEncoding`` or any mapping): every entry is a keyword
  argument of the model (``input_ids``, ``attention_mask``, ``pixel_values``, ...) except the
  target, which is ``labels`` (or ``y``/``target``/``targets``); ``{"x": ..., "y": ...}`` is an
  ``(X, y)`` pair;
* a :class:`~inspect_kit.data.DataBundle` or a spec string (``"digits"``): the ``split``.

Integer inputs (token ids) stay integer; floating inputs and targets are cast to the view's
dtype and everything moves to its device. ``samples=N`` draws ``N`` samples at random with
``torch.Generator().manual_seed(seed)`` (kept in data order), the one meaning of a sample count
in the kit. Batches are weighted by size: the full-data mean loss is
``L = sum_b (n_b / N) L_b``.

>>> import torch
>>> bs = to_batches((torch.randn(10, 3), torch.randint(0, 2, (10,))), batch_size=4)
>>> [b.n for b in bs]
[4, 4, 2]
>>> bs = to_batches([{"input_ids": torch.ones(2, 5, dtype=torch.long), "labels": torch.zeros(2)}])
>>> sorted(bs[0].kwargs), bs[0].args, bs[0].kwargs["input_ids"].dtype
(['input_ids'], (), torch.int64)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..errors import DataError, NonFiniteError, OptionError

#: keys of a dict batch that hold the target
TARGET_KEYS = ("labels", "label", "y", "target", "targets")


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch: ``model(*args, **kwargs)`` is the output, ``target`` what the loss compares."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: torch.Tensor | None
    n: int

    @property
    def x(self) -> Any:
        """The single positional input (or the first keyword input) for code that needs one."""
        if self.args:
            return self.args[0]
        return next(iter(self.kwargs.values()))

    def map(self, fn: Any) -> Batch:
        """The batch with ``fn`` applied to every tensor (inputs and target)."""
        def f(v: Any) -> Any:
            return fn(v) if isinstance(v, torch.Tensor) else v

        return Batch(tuple(f(a) for a in self.args), {k: f(v) for k, v in self.kwargs.items()},
                     None if self.target is None else fn(self.target), self.n)

    def take(self, idx: torch.Tensor) -> Batch:
        """Samples ``idx`` of this batch (tensors with a leading sample axis are indexed)."""
        def f(v: Any) -> Any:
            return v[idx] if isinstance(v, torch.Tensor) and v.dim() and len(v) == self.n else v

        return Batch(tuple(f(a) for a in self.args), {k: f(v) for k, v in self.kwargs.items()},
                     None if self.target is None else f(self.target), int(len(idx)))


def _tensor(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return torch.from_numpy(v)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], (int, float)):
        return torch.as_tensor(v)
    return v


def _size(args: tuple, kwargs: Mapping[str, Any], target: Any) -> int:
    for v in (*args, *kwargs.values(), target):
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    raise DataError("a batch holds no tensor with a sample axis; pass tensors of shape (N, ...)")


def as_batch(b: Any) -> Batch:
    """One batch from an ``(x, y)`` pair, an ``(x,)`` tuple, a dict batch or a :class:`Batch`."""
    if isinstance(b, Batch):
        return b
    if isinstance(b, Mapping):
        d = {str(k): _tensor(v) for k, v in b.items()}
        if set(d) == {"x", "y"}:
            return as_batch((d["x"], d["y"]))
        key = next((k for k in TARGET_KEYS if k in d), None)
        target = d.pop(key) if key is not None else None
        if not d:
            raise DataError(f"a dict batch needs model inputs besides the target; got {list(b)}")
        return Batch((), d, target, _size((), d, target))
    if isinstance(b, (tuple, list)) and 1 <= len(b) <= 2:
        x = _tensor(b[0])
        y = _tensor(b[1]) if len(b) == 2 else None
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dim() and y.dim() \
                and len(x) != len(y):
            raise DataError(f"X has {len(x)} samples but y has {len(y)}; they must match")
        if isinstance(x, Mapping):
            inner = as_batch({**x, **({"labels": y} if y is not None else {})})
            return inner
        return Batch((x,), {}, y, _size((x,), {}, y))
    raise DataError(f"each batch must be an (x, y) pair or a dict of tensors, got "
                    f"{type(b).__name__}")


def concat(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]

    def cat(vals: list[Any]) -> Any:
        if all(isinstance(v, torch.Tensor) and v.dim() for v in vals):
            try:
                return torch.cat(vals)
            except RuntimeError as exc:
                raise DataError(f"batches of different shapes cannot be merged for a sample "
                                f"draw ({exc}); pad them to one length") from exc
        return vals[0]

    first = batches[0]
    args = tuple(cat([b.args[i] for b in batches]) for i in range(len(first.args)))
    kwargs = {k: cat([b.kwargs[k] for b in batches]) for k in first.kwargs}
    target = None if first.target is None else cat([b.target for b in batches])
    return Batch(args, kwargs, target, sum(b.n for b in batches))


def _rebatch(whole: Batch, batch_size: int | None) -> list[Batch]:
    if batch_size is None or batch_size >= whole.n:
        return [whole]
    return [whole.take(torch.arange(i, min(i + batch_size, whole.n)))
            for i in range(0, whole.n, batch_size)]


def _source(data: Any, split: str) -> Any:
    from ..data import DataBundle, load_data

    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle):
        data = data.split(split)
    return data


def _one_batch(data: Any) -> bool:
    """A dict batch, an ``(X, y)``/``(X,)`` pair of arrays, or ``(dict of inputs, y)``."""
    if isinstance(data, Mapping):
        return True
    if not isinstance(data, (tuple, list)) or not 1 <= len(data) <= 2:
        return False
    first = data[0]
    if isinstance(first, Mapping):
        return len(data) == 2 and not isinstance(data[1], (tuple, list, Mapping))
    return not isinstance(first, (tuple, list))


def to_batches(
    data: Any,
    *,
    split: str = "train",
    batch_size: int | None = None,
    samples: int | None = None,
    seed: int = 0,
) -> list[Batch]:
    """Every data form as a list of :class:`Batch` (see the module docstring)."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise OptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool)
                                or samples < 1):
        raise OptionError(f"samples must be a positive integer (a seeded random draw of that "
                          f"many samples) or None for all, got {samples!r}")
    data = _source(data, split)
    if _one_batch(data):
        batches = [as_batch(data)]
        whole = True
    elif isinstance(data, Iterable):
        batches = [as_batch(b) for b in data]
        whole = False
    else:
        raise DataError(
            f"cannot use {type(data).__name__} as data: pass a DataLoader, an (X, y) pair, a dict "
            "batch, an iterable of batches, a DataBundle or a spec such as 'digits'")
    if not batches:
        raise DataError("the data yielded no batches")
    if sum(b.n for b in batches) == 0:
        raise DataError("the data is empty (0 samples)")
    if samples is not None:
        merged = concat(batches)
        if samples < merged.n:
            g = torch.Generator().manual_seed(int(seed))
            idx = torch.randperm(merged.n, generator=g)[:samples].sort().values
            merged = merged.take(idx)
        return _rebatch(merged, batch_size)
    if whole or batch_size is not None:
        return _rebatch(concat(batches) if len(batches) > 1 else batches[0], batch_size)
    return batches


def cast(batch: Batch, dtype: torch.dtype, device: torch.device) -> Batch:
    """Floating tensors to ``dtype``; every tensor to ``device``; integer tensors stay integer."""
    def f(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.to(device=device, dtype=dtype)
        return t.to(device)

    return batch.map(f)


def check_finite(batches: Iterable[Batch], what: str = "input data") -> None:
    """Raise :class:`NonFiniteError` when a floating input or target holds NaN or inf."""
    for i, b in enumerate(batches):
        for v in (*b.args, *b.kwargs.values(), b.target):
            if isinstance(v, torch.Tensor) and v.is_floating_point() \
                    and not bool(torch.isfinite(v).all()):
                raise NonFiniteError(f"the {what} contains NaN or inf (batch {i}); clean it "
                                     "first")


def unwrap(out: Any) -> torch.Tensor:
    """The prediction tensor of a model output: a tensor, the first element of a tuple, or the
    ``logits`` of a HuggingFace ``ModelOutput`` / dict (else its first tensor)."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"]
        for v in out.values():
            if isinstance(v, torch.Tensor):
                return v
    if isinstance(out, (tuple, list)) and out:
        return unwrap(out[0])
    raise DataError(f"the model returned a {type(out).__name__}; the kit needs a tensor, a tuple "
                    "or an output object with .logits; pass forward= to pick the prediction")
