"""Basis functions shared by the KAN adapters: Cox-de Boor B-splines and Gaussian RBFs.

Written from the recursion, independently of every KAN implementation, so an adapter's edge
values are an independent check of the module's own forward.
"""

from __future__ import annotations

import torch


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, k: int, *, nan_to_zero: bool = True,
                  zero_terms: bool = False) -> torch.Tensor:
    """B-spline basis of every column of ``x (B, n)`` on its knot row ``grid (n, M)``.

    Returns ``(B, n, M - 1 - k)``. Order 0 uses half-open cells ``[t_m, t_{m+1})``; then

        B_{m,p}(x) = (x - t_m) / (t_{m+p} - t_m) B_{m,p-1}(x)
                   + (t_{m+p+1} - x) / (t_{m+p+1} - t_{m+1}) B_{m+1,p-1}(x).

    The basis is *not clamped* (pykan, efficient-kan and the zoo KAN all use it so): outside
    ``[t_0, t_{M-1}]`` every basis function is 0. Repeated knots (zero denominators) follow the
    caller's convention: ``zero_terms`` drops each term with a zero denominator (the zoo KAN);
    otherwise ``nan_to_zero`` replaces a NaN value by 0 after each order, as pykan's
    ``torch.nan_to_num`` does (efficient-kan does neither).
    """
    x = x.unsqueeze(-1)
    t = grid.unsqueeze(0).to(x.dtype)
    value = ((x >= t[..., :-1]) & (x < t[..., 1:])).to(x.dtype)
    for p in range(1, k + 1):
        d_left = t[..., p:-1] - t[..., : -(p + 1)]
        d_right = t[..., p + 1 :] - t[..., 1:-p]
        if zero_terms:
            d_left = torch.where(d_left == 0, torch.inf, d_left)  # (x - t) / inf = 0: term dropped
            d_right = torch.where(d_right == 0, torch.inf, d_right)
        left = (x - t[..., : -(p + 1)]) / d_left
        right = (t[..., p + 1 :] - x) / d_right
        value = left * value[..., :-1] + right * value[..., 1:]
        if nan_to_zero and not zero_terms:
            value = torch.nan_to_num(value)
    return value


def spline_order(grid: torch.Tensor, coef: torch.Tensor) -> int:
    """The order ``k`` implied by knots ``(n, G + 2k + 1)`` and coefficients ``(..., G + k)``."""
    return int(grid.shape[-1] - coef.shape[-1] - 1)


def rbf_basis(x: torch.Tensor, centres: torch.Tensor, width: float) -> torch.Tensor:
    """FastKAN's Gaussian basis ``exp(-((x - c_g) / h)^2)``: ``(B, n)`` -> ``(B, n, G)``."""
    return torch.exp(-(((x.unsqueeze(-1) - centres.to(x.dtype)) / width) ** 2))
