"""The exact dense Hessian of a small model, by ``torch.func`` (ground truth for the estimators).

    H = sum_b (n_b / N) d^2/dtheta^2 L_b(theta)

is formed column by column by ``torch.func.hessian`` (forward-over-reverse, ``jacfwd(jacrev)``)
of the loss as a function of the flat parameter vector, evaluated through
``torch.func.functional_call``; this path shares no code with :mod:`.operator` (double backward on
a cached graph). ``eigvalsh`` of it gives the whole spectrum. Cost grows like ``n^2`` in memory
and ``n`` forward-backward passes; above ``max_params`` (default 4000) the call refuses with a
:class:`~inspect_kit.errors.SizeLimitError` (a 3,466-parameter MLP on 1,437 samples takes ~70 s
and 8 GB with ``torch.func.hessian``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from inspect_kit.data import Batches, LossFn, resolve_loss
from inspect_kit.errors import SizeLimitError
from inspect_kit.modes import model_mode
from inspect_kit.params import named_params

MAX_PARAMS = 4000


@dataclasses.dataclass(frozen=True)
class DenseHessian:
    """The dense matrix, its parameter layout, and its ascending eigenvalues."""

    matrix: torch.Tensor
    names: list[str]
    shapes: dict[str, tuple[int, ...]]

    def eigenvalues(self) -> np.ndarray:
        """All eigenvalues, ascending (float64)."""
        return torch.linalg.eigvalsh(self.matrix.double()).cpu().numpy()

    def slices(self) -> dict[str, slice]:
        out, i = {}, 0
        for n in self.names:
            k = int(np.prod(self.shapes[n])) if self.shapes[n] else 1
            out[n] = slice(i, i + k)
            i += k
        return out

    def block(self, names: Iterable[str]) -> torch.Tensor:
        """The diagonal block ``H_BB`` of the given parameters."""
        sl = self.slices()
        idx = torch.cat([torch.arange(sl[n].start, sl[n].stop) for n in names])
        return self.matrix[idx][:, idx]


def dense_hessian(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None = None,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
    mode: str | None = "eval",
    dtype: torch.dtype = torch.float64,
    batch_size: int | None = None,
    max_params: int = MAX_PARAMS,
    chunk_size: int | None = None,
) -> DenseHessian:
    """The exact ``n x n`` Hessian of the sample-weighted mean loss (see module docstring).

    ``chunk_size`` bounds memory: the columns are then formed ``chunk_size`` at a time by
    ``torch.func.jacrev(torch.func.grad(f), chunk_size=...)`` (reverse-over-reverse).
    """
    chosen = named_params(model, include=include)
    n = sum(t.numel() for t in chosen.values())
    if n > max_params:
        raise SizeLimitError(
            f"the dense Hessian of {n} parameters needs {n * n * 8 / 1e9:.2f} GB for the matrix "
            f"alone (limit max_params={max_params}); use analyses.hessian.hessian(...) with "
            "Lanczos/SLQ instead, or restrict include= to fewer parameters"
        )
    names = list(chosen)
    shapes = {k: tuple(v.shape) for k, v in chosen.items()}
    theta = torch.cat([chosen[k].reshape(-1) for k in names]).to(dtype)
    fixed = {k: (p.detach().to(dtype).clone() if p.is_floating_point() else p.detach().clone())
             for k, p in model.named_parameters() if k not in chosen}
    batches = Batches.of(data, batch_size=batch_size)
    loss_fn = resolve_loss(loss, batches.first_target())
    total = batches.n_samples
    H = torch.zeros(n, n, dtype=dtype)
    with model_mode(model, mode, warn=False):
        for x, y in batches:
            x = x.to(dtype) if x.is_floating_point() else x
            y = y.to(dtype) if y.is_floating_point() else y
            buffers = {k: b.detach().clone() for k, b in model.named_buffers()}

            def f(flat: torch.Tensor, x=x, y=y, buffers=buffers) -> torch.Tensor:
                state, i = {**fixed, **buffers}, 0
                for k in names:
                    m = int(np.prod(shapes[k])) if shapes[k] else 1
                    state[k] = flat[i:i + m].reshape(shapes[k])
                    i += m
                return loss_fn(functional_call(model, state, (x,)), y)

            fn = (torch.func.hessian(f) if chunk_size is None else
                  torch.func.jacrev(torch.func.grad(f), chunk_size=int(chunk_size)))
            H += fn(theta.detach().clone()) * (len(x) / total)
    H = 0.5 * (H + H.T)
    return DenseHessian(H, names, shapes)
