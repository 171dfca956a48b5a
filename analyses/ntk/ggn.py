"""Consistency check: the NTK and the Gauss-Newton matrix share their nonzero eigenvalues.

For a loss ``L(theta) = sum_b (n_b / N) l_b(f(theta; x_b))`` the generalised Gauss-Newton matrix
(Schraudolph 2002; Martens 2020, "New insights and perspectives on the natural gradient method")
is ``G = J^T Lambda J``, with ``J`` the ``(N O) x P`` Jacobian of the outputs and ``Lambda`` the
block-diagonal ``(N O) x (N O)`` Hessian of the loss in the outputs (weights ``n_b / N``
included). For ``A = Lambda^(1/2) J``, ``G = A^T A`` and ``A A^T = Lambda^(1/2) Theta
Lambda^(1/2)`` (``Theta = J J^T``, the full NTK) have the same nonzero eigenvalues. For the mean
squared error over all ``N O`` entries (the kit's "mse"), ``Lambda = (2 / (N O)) I``, so

    eig(G) = (2 / (N O)) eig(Theta)       (nonzero eigenvalues).

The check computes both sides by different routes: the top eigenvalues of ``G`` by Lanczos on
Gauss-Newton-vector products in parameter space (``P`` entries: a ``jvp``, the loss Hessian in
the outputs, a ``vjp``), and those of ``Lambda^(1/2) Theta Lambda^(1/2)`` by ``eigvalsh`` of the
formed kernel (``N O`` rows). Small models only (``N O <= MAX_ROWS``).

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> from analyses.ntk.chunks import chunks
>>> from analyses.ntk.contraction import kernel_by_contraction
>>> torch.manual_seed(0) and None
>>> x, y = torch.randn(6, 3), torch.randn(6, 2)
>>> view = ModelView(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), (x, y),
...                  loss="mse", dtype="float64")
>>> K = kernel_by_contraction(view, chunks(view, 6), "full")
>>> r = ggn_check(view, K, 3, seed=0)
>>> r["factor"] == 2 / 12, r["max_relative_difference"] < 1e-8
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from analyses.hessian.lanczos import lanczos_eigs
from inspect_kit.errors import SizeLimitError
from inspect_kit.view.jacobian import safe_jvp, vjp

from . import forms

#: largest ``N O`` of the check (the output Hessian and the kernel are diagonalised densely)
MAX_ROWS = 4096


def output_hessians(view: Any) -> list[torch.Tensor]:
    """Per view batch, ``(n_b / N) d^2 l_b / dz^2`` as an ``(n_b O) x (n_b O)`` matrix."""
    loss_fn = view._need_loss()
    out = []
    for b in view.batches:
        with torch.no_grad():
            z = view.call(view.full_state(), b)
        shape = z.shape

        def lb(flat: torch.Tensor, b: Any = b, shape: Any = shape) -> torch.Tensor:
            return loss_fn(flat.reshape(shape), b.target)

        H = torch.func.hessian(lb)(z.reshape(-1).detach())
        out.append(H * view.weight(b))
    return out


class GGNOperator:
    """``v -> G v = sum_b J_b^T Lambda_b J_b v`` (the interface Lanczos consumes)."""

    def __init__(self, view: Any, hessians: list[torch.Tensor]) -> None:
        self.view, self.hessians = view, hessians
        self.n, self.dtype, self.device = view.n, view.dtype, view.device
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        V = v.reshape(1, -1) if v.dim() == 1 else v
        k = V.shape[0]
        out = torch.zeros(k, self.n, dtype=self.dtype, device=self.device)
        for b, H in zip(self.view.batches, self.hessians):
            z = safe_jvp(self.view, V, b)  # (k, n_b, *O)
            out += vjp(self.view, (z.reshape(k, -1) @ H).reshape(z.shape), b)
        self.hvp_count += k
        return out[0] if v.dim() == 1 else out


def ggn_check(view: Any, K_full: torch.Tensor, k: int, *, seed: int = 0,
              tol: float = 1e-10, progress: bool | None = False) -> dict[str, Any]:
    """Top ``k`` eigenvalues of ``G`` and of ``Lambda^(1/2) Theta Lambda^(1/2)`` and their
    largest difference relative to the top one; ``factor`` is ``2 / (N O)`` for "mse"."""
    n, _, o, _ = K_full.shape
    if n * o > MAX_ROWS:
        raise SizeLimitError(f"the GGN check diagonalises {n * o} x {n * o} matrices (N O = "
                             f"{n} x {o}); it is for small models: use samples <= "
                             f"{MAX_ROWS // o}")
    hessians = output_hessians(view)
    Lam = torch.block_diag(*[H.double() for H in hessians])
    lam, U = torch.linalg.eigh(Lam)
    S = (U * lam.clamp_min(0).sqrt()) @ U.T
    theta = forms.matrices(K_full.double(), "full")[0]
    M = S @ theta @ S
    kk = min(k, n * o, view.n)
    ntk_side = np.linalg.eigvalsh(((M + M.T) / 2).cpu().numpy())[::-1][:kk].copy()
    e = lanczos_eigs(GGNOperator(view, hessians), kk, tol=tol, seed=seed, progress=progress)
    ggn = e.eigenvalues
    top = max(abs(float(ntk_side[0])), 1e-300)
    mse = view.loss_spec == "mse" or (view.loss_spec == "default" and not view.classify)
    factor = 2.0 / (n * o) if mse else None
    name = "mse" if mse else ("cross_entropy" if view.loss_spec == "default" else view.loss_spec)
    out = {"loss": name, "factor": factor,
           "ggn_eigenvalues": ggn, "ntk_side_eigenvalues": ntk_side,
           "max_relative_difference": float(np.max(np.abs(ggn - ntk_side)) / top),
           "ggn_products": e.products}
    if factor is not None:
        scaled = factor * np.linalg.eigvalsh(theta.cpu().numpy())[::-1][:kk]
        out["scaled_ntk_eigenvalues"] = scaled.copy()
        out["max_relative_difference_scaled"] = float(np.max(np.abs(ggn - scaled)) / top)
    return out
