"""The exact dense Hessian of a small model, by ``torch.func`` (ground truth for the estimators).

    H = sum_b (n_b / N) d^2/dtheta^2 L_b(theta)

is formed column by column by ``torch.func.hessian`` (forward-over-reverse, ``jacfwd(jacrev)``)
of the model view's loss as a function of the flat parameter vector
(:meth:`inspect_kit.view.ModelView.functional_loss`): the same function as the operator's, but
differentiated by ``torch.func`` transforms instead of double backward on a cached graph.
``eigvalsh`` of it gives the whole spectrum. Cost grows like ``n^2`` in memory and ``n``
forward-backward passes; above ``max_params`` (default 4000) the call refuses with a
:class:`~inspect_kit.errors.SizeLimitError` (a 3,466-parameter MLP on 1,437 samples takes ~70 s
and 8 GB with ``torch.func.hessian``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.errors import SizeLimitError
from inspect_kit.view import ModelView

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
    max_params: int = MAX_PARAMS,
    chunk_size: int | None = None,
    view: Any = None,
    **view_options: Any,
) -> DenseHessian:
    """The exact ``n x n`` Hessian of the sample-weighted mean loss (see module docstring).

    The model view's options (``loss``, ``include``, ``model_mode``, ``dtype`` (default
    float64), ``batch_size``, ``samples``, ...) say what function is differentiated; or pass a
    built ``view``. ``chunk_size`` bounds memory: the columns are then formed ``chunk_size`` at
    a time by ``torch.func.jacrev(torch.func.grad(f), chunk_size=...)`` (reverse-over-reverse).
    """
    if view is None:
        view_options.setdefault("dtype", torch.float64)
        view = ModelView(model, data, **view_options)
    n = view.n
    if n > max_params:
        raise SizeLimitError(
            f"the dense Hessian of {n} parameters needs {n * n * 8 / 1e9:.2f} GB for the matrix "
            f"alone (limit max_params={max_params}); use analyses.hessian.hessian(...) with "
            "Lanczos/SLQ instead, or restrict include= to fewer parameters"
        )
    H = torch.zeros(n, n, dtype=view.dtype, device=view.device)
    with view.mode():
        for b in view.batches:
            f = view.functional_loss(b)
            fn = (torch.func.hessian(f) if chunk_size is None else
                  torch.func.jacrev(torch.func.grad(f), chunk_size=int(chunk_size)))
            H += fn(view.theta.detach().clone()) * view.weight(b)
    H = 0.5 * (H + H.T)
    return DenseHessian(H.cpu(), list(view.names), dict(view.shapes))
