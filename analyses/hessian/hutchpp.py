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

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar

from .hutchinson import TraceEstimate, exact_trace, quadratic_forms, rademacher


def hutchpp_trace(op, budget: int = 100, *, seed: int = 0,
                  progress: bool | None = None) -> TraceEstimate:
    """Hutch++ trace estimate with ``budget`` products (see the module docstring)."""
    budget = int(budget)
    if budget < 3:
        raise OptionError(f"Hutch++ needs a budget of >= 3 products, got {budget!r}")
    if op.n <= budget:
        return exact_trace(op, progress=progress)
    s = budget // 3
    l = budget - 2 * s
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    S = rademacher(s, op.n, g, op.dtype, op.device)
    G = rademacher(l, op.n, g, op.dtype, op.device)
    with bar(budget, desc="trace (hutch++)", progress=progress, unit="hvp") as pbar:
        Y = op.matvec(S)
        pbar.update(s)
        Q, _ = torch.linalg.qr(Y.T.double())  # (n, s)
        Q = Q.to(op.dtype)
        HQ = op.matvec(Q.T.contiguous())
        pbar.update(s)
        t1 = float((HQ * Q.T).sum().double())
        Gd = G - (G @ Q) @ Q.T
        forms = quadratic_forms(op, Gd, pbar)
    t2 = float(forms.mean())
    stderr = float(forms.std(ddof=1) / np.sqrt(l)) if l > 1 else float("nan")
    return TraceEstimate(t1 + t2, stderr, "hutch++", budget)
