"""Adapter for the zoo's B-spline KAN (``inspect_kit.zoo.kan.KAN``), ``[out, in]`` index order.

    phi[j, i](x) = mask[j, i] * (scale_base[j, i] * b(x)
                                 + scale_sp[j, i] * sum_m coef[j, i, m] B_m(x; grid[i]))
    h_{l+1, j} = sum_i phi[j, i](h_{l, i}) + bias[j]
"""

from __future__ import annotations

from typing import Any

import torch

from ..zoo.kan import base_function
from .basis import bspline_basis, spline_order
from .protocol import KANAdapter, sym_affine


class ZooKANAdapter(KANAdapter):
    """Edges of ``inspect_kit.zoo.kan.KAN`` from its buffers and parameters."""

    family = "zoo"

    def __init__(self, model: Any) -> None:
        super().__init__(model, list(model.width))
        self.layers = list(model.layers)

    def edge_shape(self, l: int) -> tuple[int, int]:
        out, n_in = self.layers[l].mask.shape
        return int(out), int(n_in)

    def edge_values(self, l: int, x_l: torch.Tensor) -> torch.Tensor:
        layer = self.layers[l]
        coef = layer.coef.detach()
        grid = layer.grid.detach()
        basis = bspline_basis(x_l, grid, spline_order(grid, coef), zero_terms=True)  # (B, in, G+k)
        spline = torch.einsum("bim,jim->bji", basis, coef.to(x_l.dtype))
        base = base_function(layer.base_fun, x_l).unsqueeze(1)
        return layer.mask.detach() * (layer.scale_base.detach() * base + layer.scale_sp.detach() * spline)

    def node_map(self, l: int, sub_sums: torch.Tensor) -> torch.Tensor:
        return sub_sums + self.layers[l].bias.detach()

    def node_map_sympy(self, l: int, sub_exprs: list[Any]) -> list[Any]:
        bias = self.layers[l].bias.detach().tolist()
        return [sym_affine(e, 1.0, float(b)) for e, b in zip(sub_exprs, bias)]

    def mask(self, l: int) -> torch.Tensor:
        return (self.layers[l].mask.detach() != 0).to(self.dtype)

    def grid_range(self, l: int) -> torch.Tensor:
        layer = self.layers[l]
        k = spline_order(layer.grid, layer.coef)
        g = layer.grid.detach()
        return torch.stack([g[:, k], g[:, g.shape[1] - 1 - k]], dim=1)

    def spline_coefficients(self, l: int) -> torch.Tensor:
        layer = self.layers[l]
        return (layer.mask * layer.scale_sp).detach().unsqueeze(-1) * layer.coef.detach()

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The zoo KAN's own ``layer_inputs`` (a plain forward), without autograd."""
        with torch.no_grad():
            return [h.detach() for h in self.model.layer_inputs(self.prepare_input(x))]
