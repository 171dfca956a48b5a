"""Hessian trace by Hutchinson's estimator under a fixed budget of products.

Hutchinson (1989, "A stochastic estimator of the trace of the influence matrix for Laplacian
smoothing splines"): for Rademacher probes ``z`` (entries +-1 with probability 1/2),
``E[z^T H z] = tr(H)``, so with ``m`` probes

    tr(H) ~ (1/m) sum_i z_i^T H z_i,     stderr = std(z_i^T H z_i) / sqrt(m).

The variance is ``2 (||H||_F^2 - sum_i H_ii^2)``; the error falls only like ``1/sqrt(m)``
(see :mod:`analyses.hessian.hutchpp` for a better use of the same budget). Unlike PyHessian's
``trace()`` (which stops when the running mean changes by < 1e-3, after as few as 7 probes with
up to 20% error on a digits MLP), the budget is fixed and the standard error is reported.

>>> import torch
>>> from analyses.hessian.operator import MatrixOperator
>>> A = MatrixOperator(torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64)))
>>> round(hutchinson_trace(A, 50, progress=False).trace, 6)  # diagonal: exact for Rademacher
55.0
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from inspect_kit.errors import OptionError
from inspect_kit.memory import budget
from inspect_kit.progress import bar

#: probes per batched product
CHUNK = 16


@dataclasses.dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its standard error, the method and the products spent."""

    trace: float
    stderr: float
    method: str
    products: int


def rademacher(k: int, n: int, generator: torch.Generator, dtype: torch.dtype,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """``(k, n)`` matrix of independent +-1 entries."""
    bits = torch.randint(0, 2, (k, n), generator=generator, device=device)
    return (2 * bits - 1).to(dtype)


def block_size(op, memory: int | float | str | None = None) -> int:
    """Vectors per batched product: ``CHUNK``, fewer when a block of ``k`` vectors (the probes,
    the products and about two parameter-sized intermediates of the batched backward per
    vector) would not fit in the memory budget."""
    itemsize = torch.empty(0, dtype=op.dtype).element_size()
    per_vector = 4 * op.n * itemsize
    return int(max(1, min(CHUNK, budget(memory) // max(per_vector, 1))))


def quadratic_forms(op, Z: torch.Tensor, pbar=None, chunk: int = CHUNK) -> np.ndarray:
    """``z_i^T H z_i`` for the rows of ``Z``, ``chunk`` products at a time."""
    out = []
    for i in range(0, len(Z), chunk):
        z = Z[i:i + chunk]
        out.append((op.matvec(z) * z).sum(1).double().cpu().numpy())
        if pbar is not None:
            pbar.update(len(z))
    return np.concatenate(out) if out else np.zeros(0)


def exact_trace(op, progress: bool | None = None) -> TraceEstimate:
    """``sum_i e_i^T H e_i`` with ``n`` products (used when ``n`` is within the budget)."""
    eye = torch.eye(op.n, dtype=op.dtype, device=op.device)
    with bar(op.n, desc="trace (exact)", progress=progress, unit="hvp") as pbar:
        diag = quadratic_forms(op, eye, pbar)
    return TraceEstimate(float(np.sum(diag)), 0.0, "exact", op.n)


def hutchinson_trace(op, budget: int = 100, *, seed: int = 0, memory: int | str | None = None,
                     progress: bool | None = None) -> TraceEstimate:
    """Hutchinson's trace estimate with ``budget`` Rademacher probes (one product each).

    Probes are drawn and used one block at a time (:func:`block_size`): memory ``O(block * n)``
    whatever the budget."""
    if int(budget) < 2:
        raise OptionError(f"the trace budget must be >= 2 products, got {budget!r}")
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    chunk = block_size(op, memory)
    forms = []
    with bar(int(budget), desc="trace (hutchinson)", progress=progress, unit="hvp") as pbar:
        for i in range(0, int(budget), chunk):
            Z = rademacher(min(chunk, int(budget) - i), op.n, g, op.dtype, op.device)
            forms.append(quadratic_forms(op, Z, pbar, chunk))
    s = np.concatenate(forms)
    return TraceEstimate(float(s.mean()), float(s.std(ddof=1) / np.sqrt(len(s))),
                         "hutchinson", int(budget))
