"""Reference B-spline Kolmogorov-Arnold network (Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks",
arXiv 2404.19756), with pykan's edge conventions but ``[out, in]`` index order like ``nn.Linear``.

One layer maps ``x (B, in)`` to ``y (B, out)`` through one learnable univariate function per edge:

    phi[j, i](x_i) = mask[j, i] * ( scale_base[j, i] * b(x_i)
                                    + scale_sp[j, i] * sum_m coef[j, i, m] * B_m(x_i; grid[i]) )
    y_j = sum_i phi[j, i](x_i) + bias[j]

``b`` is SiLU (or identity / zero) and ``B_m`` are the Cox-de Boor B-splines of order ``k`` on
input ``i``'s knot row ``grid[i]`` (G intervals on ``grid_range`` plus ``k`` extension knots each
side, so ``G + k`` basis functions). As in pykan the basis is *not clamped*: order 0 uses half-open
cells ``[t_m, t_{m+1})`` and every basis function is 0 outside ``[grid[i, 0], grid[i, -1]]``, where
an edge reduces to its base branch. pykan stores the same tensors transposed (``[in, out]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelSpecError, NonFiniteError

BASE_FUNS = ("silu", "identity", "zero")


def extend_grid(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Append ``k`` knots on each side of each row, with the row's mean step ``(t_G - t_0) / G``."""
    h = (grid[:, -1:] - grid[:, :1]) / (grid.shape[1] - 1)
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    left = grid[:, :1] - h * steps.flip(0)
    right = grid[:, -1:] + h * steps
    return torch.cat([left, grid, right], dim=1)


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """Cox-de Boor B-splines: ``x (B, n)``, knots ``grid (n, M)`` -> ``(B, n, M - 1 - k)``.

    ``B_{m,0}(x) = [t_m <= x < t_{m+1}]`` and
    ``B_{m,p}(x) = (x - t_m)/(t_{m+p} - t_m) B_{m,p-1}(x) + (t_{m+p+1} - x)/(t_{m+p+1} - t_{m+1})
    B_{m+1,p-1}(x)``, a term with a zero denominator (repeated knots) counting as 0.
    """
    x = x.unsqueeze(-1)  # (B, n, 1)
    t = grid.to(x.dtype).unsqueeze(0)  # (1, n, M)
    value = ((x >= t[..., :-1]) & (x < t[..., 1:])).to(x.dtype)
    for p in range(1, k + 1):
        d_left = t[..., p:-1] - t[..., : -(p + 1)]
        d_right = t[..., p + 1 :] - t[..., 1:-p]
        # reciprocals on the (small) knot tensors; 0 where a denominator vanishes
        inv_left = torch.where(d_left == 0, 0.0, 1.0 / d_left)
        inv_right = torch.where(d_right == 0, 0.0, 1.0 / d_right)
        value = ((x - t[..., : -(p + 1)]) * inv_left * value[..., :-1]
                 + (t[..., p + 1 :] - x) * inv_right * value[..., 1:])
    return value


def fit_coef(x: torch.Tensor, y: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """Least-squares spline coefficients: samples ``x (B, in)``, curves ``y (B, out, in)``.

    Solves ``min_c sum_b (sum_m c[j, i, m] B_m(x_bi) - y[b, j, i])^2`` for every edge (minimum-norm
    solution when under-determined) and returns ``coef (out, in, G + k)``.
    """
    mat = bspline_basis(x, grid, k).permute(1, 0, 2)  # (in, B, n_coef)
    rhs = y.permute(2, 0, 1)  # (in, B, out)
    if mat.is_meta:  # shape-only build (checkpoint checks before allocating): no lstsq kernel
        return torch.empty(y.shape[1], y.shape[2], mat.shape[2], dtype=y.dtype, device="meta")
    sol = torch.linalg.lstsq(mat.double(), rhs.double(), driver="gelsd").solution  # (in, nc, out)
    return sol.permute(2, 0, 1).to(y.dtype).contiguous()


def base_function(name: str, x: torch.Tensor) -> torch.Tensor:
    """The residual (base) branch by name: "silu", "identity" or "zero"."""
    if name == "silu":
        return F.silu(x)
    if name == "identity":
        return x
    return torch.zeros_like(x)


class KANLayer(nn.Module):
    """One B-spline KAN layer (see the module docstring for the edge formula).

    Initialisation follows pykan: ``coef`` is the least-squares spline through small uniform noise
    ``(U - 1/2) * noise_scale / G`` at the ``G + 1`` grid points, ``scale_base = mu/sqrt(in) +
    sigma * U(-1, 1)/sqrt(in)``; unlike pykan (``1/sqrt(in)``) ``scale_sp`` starts at 1 and there is
    an output ``bias`` (0). Random numbers come from ``generator`` (a fresh one seeded 0 if None),
    never from the global RNG.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        grid: int = 5,
        k: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_fun: str = "silu",
        noise_scale: float = 0.1,
        scale_base_mu: float = 0.0,
        scale_base_sigma: float = 1.0,
        grid_eps: float = 0.02,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if base_fun not in BASE_FUNS:
            raise ModelSpecError(f"base_fun must be one of {BASE_FUNS}, got {base_fun!r}")
        if int(grid) < 1 or int(k) < 0 or int(in_dim) < 1 or int(out_dim) < 1:
            raise ModelSpecError(
                f"KANLayer needs in_dim, out_dim, grid >= 1 and k >= 0; got in_dim={in_dim}, "
                f"out_dim={out_dim}, grid={grid}, k={k}"
            )
        lo, hi = (float(v) for v in grid_range)
        if not hi > lo:
            raise ModelSpecError(f"grid_range must be (lo, hi) with lo < hi, got {grid_range!r}")
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.grid_size, self.k = int(grid), int(k)
        self.base_fun = base_fun
        self.grid_eps = float(grid_eps)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        G = self.grid_size
        knots = torch.linspace(lo, hi, G + 1).expand(self.in_dim, G + 1)
        self.register_buffer("grid", extend_grid(knots, self.k).contiguous())
        self.register_buffer("mask", torch.ones(self.out_dim, self.in_dim))
        noise = (torch.rand(G + 1, self.out_dim, self.in_dim, generator=g) - 0.5) * noise_scale / G
        xs = self.grid[:, self.k : self.k + G + 1].T.contiguous()  # (G+1, in)
        self.coef = nn.Parameter(fit_coef(xs, noise, self.grid, self.k))
        sb = (scale_base_mu + scale_base_sigma * (torch.rand(self.out_dim, self.in_dim, generator=g)
                                                  * 2 - 1)) / math.sqrt(self.in_dim)
        self.scale_base = nn.Parameter(sb)
        self.scale_sp = nn.Parameter(torch.ones(self.out_dim, self.in_dim))
        self.bias = nn.Parameter(torch.zeros(self.out_dim))

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, grid={self.grid_size}, k={self.k}, "
                f"base_fun={self.base_fun!r}")

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """B-spline basis of every input on its own knot row: ``(B, in)`` -> ``(B, in, G + k)``."""
        return bspline_basis(x, self.grid, self.k)

    def spline(self, x: torch.Tensor) -> torch.Tensor:
        """Raw spline ``sum_m coef[j, i, m] B_m(x_i)`` (no scale, no mask): ``(B, out, in)``."""
        return torch.einsum("bim,jim->bji", self.basis(x), self.coef)

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """Every edge's value ``phi[j, i](x_i)``: ``(B, in)`` -> ``(B, out, in)``."""
        base = base_function(self.base_fun, x).unsqueeze(1)  # (B, 1, in)
        return self.mask * (self.scale_base * base + self.scale_sp * self.spline(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.edge_values(x).sum(-1) + self.bias

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt the knots to samples ``x (B, in)`` and refit ``coef`` (pykan's grid update).

        New interior knots per input: ``grid_eps * uniform + (1 - grid_eps) * quantile knots``
        (the sorted samples at ranks ``floor(B*g/G)``, g < G, and the maximum) on the sample
        range, extended by ``k`` steps; then ``coef`` is the least-squares fit of the old spline
        part on the samples, so ``scale_sp * spline`` is preserved up to the approximation error
        of the new space. An input whose samples are all equal keeps its grid and coefficients
        (pykan would collapse its knots). Mutates this layer in place (the trainer's job, never an
        analysis').
        """
        x = x.detach().reshape(len(x), -1).to(self.grid.dtype)
        if x.shape[1] != self.in_dim:
            raise ModelSpecError(f"update_grid expects inputs with {self.in_dim} features, "
                                 f"got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteError("update_grid got NaN or infinite inputs; clean the data first")
        B, G = x.shape[0], self.grid_size
        x_sorted = torch.sort(x, dim=0).values
        y_old = self.spline(x_sorted)  # (B, out, in)
        ids = [int(B / G * i) for i in range(G)] + [B - 1]
        adaptive = x_sorted[ids, :].T  # (in, G+1)
        h = (adaptive[:, -1:] - adaptive[:, :1]) / G
        uniform = adaptive[:, :1] + h * torch.arange(G + 1, dtype=x.dtype)
        knots = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        keep = (h[:, 0] <= 0).unsqueeze(1)  # constant input: nothing to adapt to
        new_grid = torch.where(keep, self.grid, extend_grid(knots, self.k))
        new_coef = fit_coef(x_sorted, y_old, new_grid, self.k)
        self.coef.copy_(torch.where(keep.T.unsqueeze(-1), self.coef, new_coef))
        self.grid.copy_(new_grid)


class KAN(nn.Module):
    """A stack of :class:`KANLayer` with pykan's plain ``width`` list, e.g. ``[2, 5, 1]``.

    Built from a local ``torch.Generator(seed)`` (the global RNG is not touched). State-dict keys:
    ``layers.{l}.grid``, ``.mask`` (buffers), ``.coef``, ``.scale_base``, ``.scale_sp``, ``.bias``.
    """

    def __init__(
        self,
        width: Sequence[int],
        grid: int = 5,
        k: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        base_fun: str = "silu",
        seed: int = 0,
        noise_scale: float = 0.1,
        grid_eps: float = 0.02,
    ) -> None:
        super().__init__()
        if (isinstance(width, (str, bytes)) or len(width) < 2
                or not all(isinstance(w, int) and w >= 1 for w in width)):
            raise ModelSpecError(
                f"KAN width must be a list of >= 2 positive ints like [2, 5, 1], got {width!r} "
                "(pykan's [n_sum, n_mult] pairs are not supported)"
            )
        self.width = list(width)
        g = torch.Generator().manual_seed(int(seed))
        self.layers = nn.ModuleList(
            KANLayer(self.width[l], self.width[l + 1], grid=grid, k=k, grid_range=grid_range,
                     base_fun=base_fun, noise_scale=noise_scale, grid_eps=grid_eps, generator=g)
            for l in range(len(self.width) - 1)
        )

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.width[0]:
            raise ModelSpecError(f"KAN with width {self.width} expects {self.width[0]} input "
                                 f"features, got {x.shape[1]}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._flat(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every layer (``len(width) - 1`` tensors), by a plain forward."""
        x = self._flat(x)
        out = []
        for layer in self.layers:
            out.append(x)
            x = layer(x)
        return out

    def regularization(
        self, x: torch.Tensor, lamb_l1: float = 1.0, lamb_entropy: float = 2.0,
        *, metric: str = "mean_abs",
    ) -> torch.Tensor:
        """Sparsity regulariser on edge activation scales (KAN paper §2.5.1, pykan ``reg``).

        Per layer, the scale matrix ``A[j, i]`` is ``mean_b |phi[j, i](x_bi)|`` (``metric=
        "mean_abs"``, the paper's L1 norm of an activation) or ``std_b phi / (std_b x_i + 0.1)``
        (``metric="std_n"``, pykan 0.2.8's default ``edge_forward_spline_n``). Then

            reg = sum_l [ lamb_l1 * sum A + lamb_entropy * (H_row + H_col) ],
            H_row = -mean_j sum_i p log2(p + 1e-4),  p = A / (sum_i A[j, :] + 1)   (cols alike),

        exactly pykan's formula (its ``+1`` and ``1e-4`` included). Differentiable.
        """
        if metric not in ("mean_abs", "std_n"):
            raise ModelSpecError(f"metric must be 'mean_abs' or 'std_n', got {metric!r}")
        total = x.new_zeros(())
        h = self._flat(x)
        for layer in self.layers:
            phi = layer.edge_values(h)  # (B, out, in)
            if metric == "mean_abs":
                A = phi.abs().mean(0)
            else:
                A = phi.std(0) / (h.std(0) + 0.1)
            p_row = A / (A.sum(1, keepdim=True) + 1)
            p_col = A / (A.sum(0, keepdim=True) + 1)
            h_row = -(p_row * torch.log2(p_row + 1e-4)).sum(1).mean()
            h_col = -(p_col * torch.log2(p_col + 1e-4)).sum(0).mean()
            total = total + lamb_l1 * A.sum() + lamb_entropy * (h_row + h_col)
            h = phi.sum(-1) + layer.bias
        return total

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor) -> None:
        """Grid update of every layer on its own input, recomputed after each layer's update."""
        h = self._flat(x)
        for layer in self.layers:
            layer.update_grid(h)
            h = layer(h)
