"""Adapter for efficient-kan ``KANLinear`` stacks (Blealtan/efficient-kan), found by state-dict layout.

A layer is any module holding ``base_weight (out, in)``, ``spline_weight (out, in, G + k)``, a knot
buffer ``grid (in, G + 2k + 1)`` and optionally ``spline_scaler (out, in)``
(``enable_standalone_scale_spline=True``, the default):

    phi[j, i](x) = base_weight[j, i] * b(x)
                   + spline_scaler[j, i] * sum_m spline_weight[j, i, m] B_m(x; grid[i])
    y_j = sum_i phi[j, i](x_i)                (no bias, no mask)

``b`` is the module's ``base_activation`` (SiLU by default; not in the state dict) and ``k`` follows
from the shapes. The layers are taken in module order and must chain (out of one = in of the next),
as in efficient-kan's ``KAN``; layer inputs are recorded with hooks on the model's own forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedModelError
from ..hooks import capture
from ..modes import model_mode
from .basis import bspline_basis, spline_order
from .protocol import KANAdapter


def _is_layer(m: nn.Module) -> bool:
    t = [getattr(m, n, None) for n in ("base_weight", "spline_weight", "grid")]
    return (all(isinstance(v, torch.Tensor) for v in t)
            and (t[0].dim(), t[1].dim(), t[2].dim()) == (2, 3, 2))


def efficient_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs with efficient-kan's KANLinear layout, in module order."""
    return [(n, m) for n, m in model.named_modules() if _is_layer(m)]


class EfficientKANAdapter(KANAdapter):
    """Edges of efficient-kan ``KANLinear`` layers (a single layer or a stack)."""

    family = "efficient_kan"

    def __init__(self, model: nn.Module) -> None:
        found = efficient_layers(model)
        if not found:
            raise UnsupportedModelError(
                "no module with efficient-kan's base_weight/spline_weight/grid layout")
        self.names = [n for n, _ in found]
        self.layers = [m for _, m in found]
        widths = [int(self.layers[0].base_weight.shape[1])]
        for name, m in found:
            out, n_in = m.base_weight.shape
            if n_in != widths[-1]:
                raise UnsupportedModelError(
                    f"efficient-kan layer {name!r} takes {n_in} inputs but the previous layer gives "
                    f"{widths[-1]}; only plain stacks of KANLinear layers are supported")
            widths.append(int(out))
        super().__init__(model, widths)

    def edge_shape(self, l: int) -> tuple[int, int]:
        out, n_in = self.layers[l].base_weight.shape
        return int(out), int(n_in)

    def _scaled(self, l: int) -> torch.Tensor:
        m = self.layers[l]
        w = m.spline_weight.detach()
        scaler = getattr(m, "spline_scaler", None)
        if isinstance(scaler, torch.Tensor) and getattr(m, "enable_standalone_scale_spline", True):
            w = w * scaler.detach().unsqueeze(-1)
        return w

    def edge_values(self, l: int, x_l: torch.Tensor) -> torch.Tensor:
        m = self.layers[l]
        grid = m.grid.detach()
        w = self._scaled(l)
        basis = bspline_basis(x_l, grid, spline_order(grid, w), nan_to_zero=False)
        spline = torch.einsum("bim,jim->bji", basis, w.to(x_l.dtype))
        act = getattr(m, "base_activation", None)
        base = act(x_l) if callable(act) else F.silu(x_l)
        return m.base_weight.detach() * base.unsqueeze(1) + spline

    def node_map(self, l: int, sub_sums: torch.Tensor) -> torch.Tensor:
        return sub_sums

    def node_map_sympy(self, l: int, sub_exprs: list[Any]) -> list[Any]:
        return list(sub_exprs)

    def mask(self, l: int) -> torch.Tensor:
        return torch.ones(self.edge_shape(l), dtype=self.dtype)

    def grid_range(self, l: int) -> torch.Tensor:
        m = self.layers[l]
        g = m.grid.detach()
        k = spline_order(g, m.spline_weight)
        return torch.stack([g[:, k], g[:, g.shape[1] - 1 - k]], dim=1)

    def spline_coefficients(self, l: int) -> torch.Tensor:
        return self._scaled(l)

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's input recorded by forward hooks while the model runs (eval mode) on ``x``."""
        return _recorded_inputs(self.model, self.names, x, self.dtype,
                                [self.edge_shape(l)[1] for l in range(self.n_layers)])


def _recorded_inputs(model: nn.Module, names: list[str], x: torch.Tensor, dtype: torch.dtype,
                     widths: list[int], extra: list[str] | None = None) -> Any:
    x = torch.as_tensor(x).to(dtype)
    select = names + (extra or [])
    with torch.no_grad(), model_mode(model, "eval", restore_attributes=True), \
            capture(model, select, inputs=True) as rec:
        model(x)
    for n in select:
        if len(rec[n]) != 1:
            raise UnsupportedModelError(
                f"layer {n!r} ran {len(rec[n])} times in one forward; edge extraction needs each KAN "
                "layer to run exactly once")
    ins = [rec.input(n).reshape(-1, w) for n, w in zip(names, widths)]
    return (ins, {n: rec.output(n) for n in extra}) if extra else ins
