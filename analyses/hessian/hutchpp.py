"""Hessian trace by Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: Optimal Stochastic
Trace Estimation", SOSA).

With a budget of ``m`` products, ``s = m // 3``:

1. ``S``: ``s`` Rademacher probes; ``Q = orth(H S)`` (``s`` products) spans the dominant
   eigen-directions;
2. the trace on that subspace is computed exactly: ``t_1 = tr(Q^T H Q)`` (``s`` products);
3. the rest is estimated by Hutchinson on the deflated probes ``g' = (I - Q Q^T) g`` for
   ``l = m - 2 s`` Rademacher ``g``: ``t_2 = (1/l) sum_i g'_i^T H g'_i``.

``tr(H) ~ t_1 + t_2`` with ``stderr = std(g'_i^T H g'_i) / sqrt(l)`` (the first part is exact
given ``Q``). The error falls like ``1/m`` instead of ``1/sqrt(m)`` when the spectrum decays, as
Hessian spectra do (measured on a digits MLP: 0.63% RMSE at 99 products vs 3% for Hutchinson).
When ``n <= m`` the trace is computed exactly from the ``n`` unit vectors instead.

>>> import torch
>>> from analyses.hessian.operator import MatrixOperator
>>> A = MatrixOperator(torch.diag(torch.arange(1.0, 201.0, dtype=torch.float64)))
>>> abs(hutchpp_trace(A, 60, progress=False).trace - 20100.0) < 0.05 * 20100
True
"""

from __future__ import annotations

import numpy as np
import torch

from inspect_kit.errors import OptionError, SizeLimitError
from inspect_kit.memory import budget as mem_budget
from inspect_kit.memory import human
from inspect_kit.progress import bar

from .hutchinson import TraceEstimate, block_size, exact_trace, quadratic_forms, rademacher


def hutchpp_trace(op, budget: int = 100, *, seed: int = 0, memory: int | str | None = None,
                  progress: bool | None = None) -> TraceEstimate:
    """Hutch++ trace estimate with ``budget`` products (see the module docstring).

    The sketch needs about ``3 (budget / 3) n`` stored entries (sketch, its products and their
    orthonormal basis); a ``memory`` budget that cannot hold them is refused with the largest
    ``budget`` that fits (plain Hutchinson needs only ``O(n)``)."""
    budget_ = int(budget)
    if budget_ < 3:
        raise OptionError(f"Hutch++ needs a budget of >= 3 products, got {budget!r}")
    if op.n <= budget_:
        return exact_trace(op, progress=progress)
    s = budget_ // 3
    l = budget_ - 2 * s
    itemsize = torch.empty(0, dtype=op.dtype).element_size()
    allowed = mem_budget(memory)
    if 3 * s * op.n * itemsize > allowed:
        fits = 3 * max(0, allowed // (3 * op.n * itemsize))
        raise SizeLimitError(
            f"Hutch++ with {budget_} products stores {3 * s} vectors of {op.n:,} entries "
            f"({human(3 * s * op.n * itemsize)}), over the memory budget ({human(allowed)}); "
            f"use trace_budget <= {fits} (if >= 3), trace_method='hutchinson' (O(n) memory) "
            "or raise memory=")
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    chunk = block_size(op, memory)
    with bar(budget_, desc="trace (hutch++)", progress=progress, unit="hvp") as pbar:
        S = rademacher(s, op.n, g, op.dtype, op.device)
        Y = torch.cat([op.matvec(S[i:i + chunk]) for i in range(0, s, chunk)])
        del S
        pbar.update(s)
        Q, _ = torch.linalg.qr(Y.T)  # (n, s) orthonormal basis of the sketch's range
        del Y
        Qt = Q.T.contiguous()
        del Q
        t1 = 0.0
        for i in range(0, s, chunk):
            t1 += float((op.matvec(Qt[i:i + chunk]) * Qt[i:i + chunk]).sum().double())
        pbar.update(s)
        forms = []
        for i in range(0, l, chunk):
            G = rademacher(min(chunk, l - i), op.n, g, op.dtype, op.device)
            G = G - (G @ Qt.T) @ Qt
            forms.append(quadratic_forms(op, G, pbar, chunk))
        forms = np.concatenate(forms)
    t2 = float(forms.mean())
    stderr = float(forms.std(ddof=1) / np.sqrt(l)) if l > 1 else float("nan")
    return TraceEstimate(t1 + t2, stderr, "hutch++", budget)
