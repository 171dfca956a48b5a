"""The empirical NTK as a matrix-free linear operator: ``u -> Theta u = J (J^T u)``.

For a vector ``u`` over the kernel's rows (``N O`` entries ``u[i, a]`` for the full kernel) one
product is a vector-Jacobian product over the samples followed by a Jacobian-vector product,

    w = J^T u = sum_(i, a) u[i, a] J_ia       (reverse mode, chunk by chunk, summed),
    (Theta u)[j, b] = <J_jb, w>               (forward mode, chunk by chunk),

so the kernel is never formed: memory ``O(P + N O)`` per vector, cost about three forward
passes over the data. The "trace" kernel ``sum_a J_.a J_.a^T`` acts on ``u`` of ``N`` entries
through ``O`` such products (cotangent ``u e_a^T`` for each output ``a``, then the ``a``-th
output of each); the kernel of output ``a`` ("per_output") through one.

The operator has the interface :func:`analyses.hessian.lanczos.lanczos_eigs` consumes
(``matvec``, ``n``, ``dtype``, ``device``, ``hvp_count``), so the top eigenvalues of a kernel
that would not fit in memory come from Lanczos on these products.

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> from .chunks import chunks
>>> x = torch.randn(5, 3, dtype=torch.float64)
>>> view = ModelView(nn.Linear(3, 1, bias=False), (x,), dtype="float64")
>>> op = NTKOperator(view, chunks(view, 2), "trace")
>>> u = torch.randn(5, dtype=torch.float64)
>>> bool(torch.allclose(op.matvec(u), x @ x.T @ u))
True
"""

from __future__ import annotations

from typing import Any

import torch

from inspect_kit.errors import OptionError
from inspect_kit.view.jacobian import safe_jvp, vjp

from .chunks import Chunk, output_shape


class NTKOperator:
    """``u -> Theta u`` for the kernel in ``form`` (``output`` picks the output of
    "per_output"); see the module docstring. ``hvp_count`` counts products."""

    def __init__(self, view: Any, parts: list[Chunk], form: str, *, output: int = 0) -> None:
        self.view, self.parts, self.form = view, parts, form
        self.out_shape = output_shape(view)
        self.o = 1
        for s in self.out_shape:
            self.o *= s
        if not 0 <= output < self.o:
            raise OptionError(f"output must be in [0, {self.o}), got {output}")
        self.output = output
        self.n_samples = parts[-1].hi
        self.n = self.n_samples * (self.o if form == "full" else 1)
        self.dtype, self.device = view.dtype, view.device
        self.hvp_count = 0

    def _cotangents(self, V: torch.Tensor) -> torch.Tensor:
        """Rows of ``V`` as output cotangents ``(k', N, O)``."""
        k, n, o = V.shape[0], self.n_samples, self.o
        if self.form == "full":
            return V.reshape(k, n, o)
        if self.form == "trace":  # (k, a) -> u_k e_a^T
            eye = torch.eye(o, dtype=V.dtype, device=V.device)
            return (V[:, None, :, None] * eye[None, :, None, :]).reshape(k * o, n, o)
        U = torch.zeros(k, n, o, dtype=V.dtype, device=V.device)
        U[:, :, self.output] = V
        return U

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``Theta v`` for ``v`` of shape ``(n,)`` or rows ``(k, n)``."""
        if v.dim() not in (1, 2) or v.shape[-1] != self.n:
            raise OptionError(f"vector of shape {tuple(v.shape)}: the operator acts on (n,) or "
                              f"(k, n) with n = {self.n}")
        V = (v.reshape(1, -1) if v.dim() == 1 else v).to(self.device, self.dtype)
        k = V.shape[0]
        U = self._cotangents(V)
        kk = U.shape[0]
        w = torch.zeros(kk, self.view.n, dtype=self.dtype, device=self.device)
        for c in self.parts:
            w += vjp(self.view, U[:, c.slice].reshape(kk, c.n, *self.out_shape), c.batch)
        Z = torch.cat([safe_jvp(self.view, w, c.batch).reshape(kk, c.n, self.o)
                       for c in self.parts], dim=1)  # (kk, N, O)
        if self.form == "full":
            out = Z.reshape(k, self.n)
        elif self.form == "trace":
            out = torch.diagonal(Z.reshape(k, self.o, self.n_samples, self.o), dim1=1,
                                 dim2=3).sum(-1)
        else:
            out = Z[:, :, self.output]
        self.hvp_count += k
        return out[0] if v.dim() == 1 else out
