"""Top eigenvalues of an empirical NTK: dense from a formed kernel, or matrix-free by Lanczos.

A formed kernel is read as its matrices (:func:`.forms.matrices`: ``J J^T`` with rows
``(i, a)`` for "full", ``N x N`` for "trace", one per output for "per_output") and
diagonalised in float64 (``numpy.linalg.eigvalsh``; Lanczos on the dense matrix when it has more
than :data:`DENSE_MAX` rows). Without the kernel, Lanczos with full reorthogonalisation
(:func:`analyses.hessian.lanczos.lanczos_eigs`) runs on the kernel-vector products of
:class:`.operator.NTKOperator`; each value comes with its residual norm.

>>> import torch
>>> K = torch.diag(torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
>>> dense_eigenvalues(K, "trace", 2)[0].tolist()
[3.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from analyses.hessian.lanczos import lanczos_eigs
from analyses.hessian.operator import MatrixOperator

from . import forms
from .operator import NTKOperator

#: matrices with more rows than this are diagonalised by Lanczos rather than eigvalsh
DENSE_MAX = 8192


def dense_eigenvalues(K: torch.Tensor, form: str, k: int, *, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` eigenvalues (descending; ``(O, k)`` for "per_output") and residuals."""
    vals, res = [], []
    for M in forms.matrices(K, form):
        kk = min(k, M.shape[0])
        if M.shape[0] <= DENSE_MAX:
            ev = np.linalg.eigvalsh(M.double().cpu().numpy())[::-1][:kk]
            vals.append(ev.copy())
            res.append(np.zeros(kk))
        else:
            e = lanczos_eigs(MatrixOperator(M.double()), kk, tol=1e-10, seed=seed,
                             progress=False)
            vals.append(e.eigenvalues)
            res.append(e.residuals)
    if form != "per_output":
        return vals[0], res[0]
    return np.stack(vals), np.stack(res)


def matrix_free_eigenvalues(view: Any, parts: list[Any], form: str, o: int, k: int, *,
                            tol: float, max_steps: int | None, seed: int,
                            memory: int | None = None, progress: bool | None = None
                            ) -> dict[str, Any]:
    """Top ``k`` eigenvalues by Lanczos on kernel-vector products (one run per output for
    "per_output"; the Krylov basis within ``memory`` bytes, thick restarts when the step cap
    would not fit): ``eigenvalues``, ``residuals``, ``converged``, ``products``, ``steps``,
    ``basis_bytes``."""
    outputs = range(o) if form == "per_output" else [0]
    vals, res, conv, products, steps, basis = [], [], [], 0, 0, 0
    for a in outputs:
        op = NTKOperator(view, parts, form, output=a)
        e = lanczos_eigs(op, min(k, op.n), tol=tol, max_steps=max_steps, seed=seed,
                         memory=memory, progress=progress)
        vals.append(e.eigenvalues)
        res.append(e.residuals)
        conv.append(e.converged)
        products += e.products
        steps = max(steps, e.steps)
        basis = max(basis, e.basis_size * op.n * torch.empty(0, dtype=op.dtype).element_size())
    one = form != "per_output"
    return {"eigenvalues": vals[0] if one else np.stack(vals),
            "residuals": res[0] if one else np.stack(res),
            "converged": bool(np.all(np.concatenate(conv))), "products": products,
            "steps": steps, "basis_bytes": int(basis)}
