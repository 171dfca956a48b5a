"""The Hessian of a model's loss as a linear operator (Hessian-vector products, "HVPs").

For parameters ``theta`` (a chosen subset of the model's trainable parameters) and data split in
batches ``b`` of ``n_b`` samples (``N = sum_b n_b``), the operator is the Hessian of the full-data
mean loss

    H = sum_b (n_b / N) * d^2/dtheta^2 L_b(theta),      L_b = mean loss on batch b,

so it does not depend on how the data is batched. A product ``H v`` is computed by double
backward (Pearlmutter 1994, "Fast exact multiplication by the Hessian"): with
``g_b = dL_b/dtheta`` built with ``create_graph=True``, ``H_b v = d(g_b . v)/dtheta``. The model
is evaluated through ``torch.func.functional_call`` on *separate* leaf tensors (copies of the
parameters, in the requested dtype), so the model itself is never edited and no ``.grad`` is
written. When the data has few batches the gradient graphs are built once and reused for every
product (about 1.5x the cost of a gradient instead of about 3x, see benchmarks/results_hessian.md).
Many vectors are evaluated at once: ``matvec`` takes a ``(k, n)`` stack and runs one batched
backward (``is_grads_batched``, i.e. ``vmap`` over the backward pass).

Every algorithm in this package (Lanczos, Hutchinson, Hutch++, SLQ, blocks) consumes only
``op.matvec``, ``op.n``, ``op.dtype``; :meth:`HessianOperator.restrict` gives the diagonal block
of a parameter group (``H_BB``) sharing the same graphs.

>>> import torch
>>> from torch import nn
>>> model = nn.Linear(3, 1)
>>> x, y = torch.randn(20, 3), torch.randn(20, 1)
>>> op = HessianOperator(model, (x, y), dtype=torch.float64)
>>> op.n
4
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from inspect_kit.data import Batches, LossFn, resolve_loss
from inspect_kit.errors import DataError, OptionError
from inspect_kit.modes import model_mode
from inspect_kit.params import check_finite, named_params

#: graphs are cached when the data has at most this many batches (``cache_graph=None``)
CACHE_MAX_BATCHES = 8


class _Counter:
    """Products done, shared by an operator and its restricted blocks."""

    def __init__(self) -> None:
        self.count = 0


class HessianOperator:
    """``v -> H v`` for the loss Hessian of ``model`` on ``data`` (see the module docstring).

    Parameters
    ----------
    model: the network; left bit-identical (parameters, buffers, flags, ``.grad``).
    data: any form :class:`inspect_kit.data.Batches` accepts (``(X, y)``, DataLoader, ...).
    loss: ``None`` (cross-entropy for integer targets, MSE otherwise), a name, or a callable
        ``(output, target) -> mean loss``.
    include: glob pattern(s) or predicate selecting parameters (default: all trainable ones).
        Frozen parameters are never included; parameters the loss does not depend on are
        skipped and listed in :attr:`skipped`.
    mode: "eval" (default), "train" or None (leave each module's flag). The model's flags are
        restored after every forward. Train mode with dropout/BatchNorm warns.
    dtype: float32/float64 for the products (default: the parameters' dtype).
    batch_size: split an ``(X, y)`` pair into batches of this size.
    cache_graph: keep the gradient graphs between products (default: when <= 8 batches).
    vectorize: evaluate a ``(k, n)`` stack in one batched backward (default True; False loops
        over the rows, which can be faster for tiny networks on CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        loss: str | LossFn | None = None,
        include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
        mode: str | None = "eval",
        dtype: torch.dtype | None = None,
        batch_size: int | None = None,
        cache_graph: bool | None = None,
        vectorize: bool = True,
    ) -> None:
        if mode not in ("eval", "train", None):
            raise OptionError(f"mode must be 'eval', 'train' or None, got {mode!r}")
        chosen = named_params(model, include=include)
        if not chosen:
            raise OptionError(
                f"include={include!r} selects no trainable parameter; trainable ones are "
                f"{[n for n, p in model.named_parameters() if p.requires_grad][:8]}"
            )
        check_finite(chosen)
        first = next(iter(chosen.values()))
        self.dtype = dtype if dtype is not None else first.dtype
        if self.dtype not in (torch.float32, torch.float64):
            raise OptionError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")
        self.device = first.device
        self.model, self.mode = model, mode
        self.vectorize = bool(vectorize)
        batches = Batches.of(data, batch_size=batch_size)
        self._batches = batches
        self.n_samples = int(batches.n_samples)
        if self.n_samples <= 0:
            raise DataError("the data is empty (0 samples)")
        y0 = batches.first_target()
        self.loss_fn = resolve_loss(loss, y0)
        # separate tensors: the model's own parameters are never handed to autograd
        self._leaves = {n: t.detach().to(self.device, self.dtype).clone().requires_grad_(True)
                        for n, t in chosen.items()}
        self._fixed = {n: p.detach().to(self.dtype).clone() if p.is_floating_point()
                       else p.detach().clone()
                       for n, p in model.named_parameters() if n not in self._leaves}
        self._buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        with model_mode(model, mode, warn=True):  # warns once about dropout/BN in train mode
            pass
        self._counter = _Counter()
        self.hvp_count = 0
        n_batches = None if not isinstance(getattr(batches, "_source", None), list) \
            else len(batches._source)
        if cache_graph is None:
            cache_graph = n_batches is not None and n_batches <= CACHE_MAX_BATCHES
        self.cache_graph = bool(cache_graph)
        self._cache: list[tuple[list[torch.Tensor], float]] | None = None
        # find parameters the loss does not depend on (first batch) and drop them
        x, y = next(iter(batches))
        try:
            grads = self._batch_grads(x, y, list(self._leaves),
                                      create_graph=self.cache_graph and n_batches == 1)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise DataError(
                f"cannot evaluate the loss of the model on the data ({type(exc).__name__}: "
                f"{exc}); check that the inputs have the shape the model expects, the targets "
                "suit the loss, and the model runs with torch.func.functional_call"
            ) from exc
        used = [n for n, g in zip(self._leaves, grads) if g is not None]
        self.skipped = [n for n in self._leaves if n not in used]
        if not used:
            raise OptionError("the loss depends on none of the selected parameters")
        if self.skipped:
            warnings.warn(f"skipping parameters the loss does not use: {self.skipped}",
                          stacklevel=2)
        self.names = used
        self._all_names = list(used)
        self.shapes = {n: tuple(self._leaves[n].shape) for n in used}
        self.sizes = {n: self._leaves[n].numel() for n in used}
        self.n = sum(self.sizes.values())
        if self.cache_graph:
            first_used = [g for n, g in zip(self._leaves, grads) if n in used]
            self._cache = [(first_used, len(x) / self.n_samples)] if n_batches == 1 else None
            if self._cache is None:
                self._cache = [
                    (self._batch_grads(xb, yb, used, create_graph=True), len(xb) / self.n_samples)
                    for xb, yb in batches
                ]

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        with model_mode(self.model, self.mode, warn=False):
            yield

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if x.is_floating_point():
            x = x.to(self.dtype)
        y = y.to(self.device)
        if y.is_floating_point():
            y = y.to(self.dtype)
        state = {**self._fixed, **self._buffers, **self._leaves}
        with self._mode():
            out = functional_call(self.model, state, (x,))
        value = self.loss_fn(out, y)
        if value.dim() != 0:
            raise OptionError(f"the loss must return a scalar batch mean, got shape "
                              f"{tuple(value.shape)}; reduce it with .mean()")
        return value

    def _batch_grads(self, x: torch.Tensor, y: torch.Tensor, names: list[str],
                     create_graph: bool) -> list[torch.Tensor | None]:
        with torch.enable_grad():
            value = self._loss(x, y)
            grads = torch.autograd.grad(value, [self._leaves[n] for n in names],
                                        create_graph=create_graph, allow_unused=True)
        return list(grads)

    def _graphs(self) -> Iterator[tuple[list[torch.Tensor | None], float]]:
        """Per batch: the gradient pieces of the active parameters and the batch weight."""
        if self._cache is not None:
            idx = [self._all_names.index(n) for n in self.names]
            for grads, w in self._cache:
                yield [grads[i] for i in idx], w
        else:
            for x, y in self._batches:
                yield self._batch_grads(x, y, self.names, create_graph=True), len(x) / self.n_samples

    # -- public ----------------------------------------------------------------------------

    @property
    def total_hvp_count(self) -> int:
        """Products done by this operator and every block restricted from it."""
        return self._counter.count

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for ``v`` of shape ``(n,)``, or the rows ``H v_i`` for a stack ``(k, n)``."""
        single = v.dim() == 1
        V = v.reshape(1, -1) if single else v
        if V.dim() != 2 or V.shape[-1] != self.n:
            raise OptionError(f"vector of shape {tuple(v.shape)}: the operator acts on "
                              f"(n,) or (k, n) with n = {self.n}")
        V = V.to(self.device, self.dtype)
        k = V.shape[0]
        if k > 1 and not self.vectorize:
            return torch.stack([self.matvec(row) for row in V])
        pieces, i = [], 0
        for n in self.names:
            s = self.sizes[n]
            pieces.append(V[:, i:i + s].reshape(k, *self.shapes[n]))
            i += s
        out = torch.zeros(k, self.n, dtype=self.dtype, device=self.device)
        leaves = [self._leaves[n] for n in self.names]
        for grads, w in self._graphs():
            keep = [j for j, g in enumerate(grads) if g is not None and g.requires_grad]
            if not keep:
                continue
            outs = [grads[j] for j in keep]
            gouts = [pieces[j] if k > 1 else pieces[j][0] for j in keep]
            hv = torch.autograd.grad(outs, leaves, grad_outputs=gouts, retain_graph=True,
                                     allow_unused=True, is_grads_batched=k > 1)
            flat = [(h.reshape(k, -1) if h is not None else
                     torch.zeros(k, self.sizes[n], dtype=self.dtype, device=self.device))
                    for h, n in zip(hv, self.names)]
            out.add_(torch.cat(flat, dim=1), alpha=w)
        self.hvp_count += k
        self._counter.count += k
        return out[0] if single else out

    def restrict(self, names: Iterable[str]) -> HessianOperator:
        """The diagonal block ``H_BB`` for the parameters ``names`` (same graphs, same data)."""
        names = list(names)
        unknown = [n for n in names if n not in self.names]
        if unknown or not names:
            raise OptionError(f"unknown or empty parameter group {unknown or names}; "
                              f"known names: {self.names}")
        sub = object.__new__(HessianOperator)
        sub.__dict__.update(self.__dict__)
        sub.names = [n for n in self.names if n in names]
        sub.shapes = {n: self.shapes[n] for n in sub.names}
        sub.sizes = {n: self.sizes[n] for n in sub.names}
        sub.n = sum(sub.sizes.values())
        sub.hvp_count = 0
        return sub

    def slices(self) -> dict[str, slice]:
        """Position of each parameter in the flat vector."""
        out, i = {}, 0
        for n in self.names:
            out[n] = slice(i, i + self.sizes[n])
            i += self.sizes[n]
        return out

    def to_dense(self, chunk: int = 64) -> torch.Tensor:
        """The ``n x n`` matrix by ``n`` products (for checks on small models)."""
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return torch.cat([self.matvec(eye[i:i + chunk]) for i in range(0, self.n, chunk)])


class MatrixOperator:
    """A dense symmetric matrix behind the same interface (for tests and small problems).

    >>> MatrixOperator(torch.eye(3)).matvec(torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise OptionError(f"need a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.dtype, self.device = matrix.dtype, matrix.device
        self.names = ["matrix"]
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvp_count += 1 if v.dim() == 1 else v.shape[0]
        return v.to(self.dtype) @ self.matrix  # symmetric: (H v^T)^T = v H

    def restrict(self, idx: list[int]) -> MatrixOperator:
        return MatrixOperator(self.matrix[idx][:, idx])
