"""Adapter for FastKAN RBF layers (ZiyaoLi/fast-kan ``FastKANLayer``), found by module layout.

A layer holds ``rbf.grid (G)`` centres, ``spline_linear.weight (out, in*G)``, optionally
``base_linear`` (``weight (out, in)``, ``bias (out)``) and ``layernorm`` (``nn.LayerNorm(in)``):

    u = LayerNorm(h)   (or u = h without a LayerNorm)
    y_j = sum_i sum_g W[j, i*G + g] exp(-((u_i - c_g) / den)^2) + sum_i base_w[j, i] silu(h_i) + base_bias[j]

``den`` (``rbf.denominator``) is not in the state dict; the module attribute is used, else
FastKAN's default ``(max c - min c) / (G - 1)``.

**Edge inputs.** With a LayerNorm the RBF part of an edge is a function of ``u_i`` while the base
part is a function of ``h_i``, and ``u_i`` depends on the whole vector ``h``. The adapter therefore
exposes ``2n`` edge-input columns per layer: columns ``0..n-1`` are ``u`` (RBF edges) and columns
``n..2n-1`` are ``h`` (base edges ``base_w * silu``); ``input_owner`` maps both back to node ``i``.
Without a LayerNorm each edge is univariate in ``h_i`` and there are ``n`` columns.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedModelError
from .basis import rbf_basis
from .efficient import _recorded_inputs
from .protocol import KANAdapter, sym_affine

NOTE_LN = ("FastKAN edges with a LayerNorm: columns 0..n-1 of a layer's edge inputs are the "
           "post-LayerNorm values u = LayerNorm(h) (RBF edges), columns n..2n-1 the raw node values h "
           "(base edges w*silu(h)).")


def _is_layer(m: nn.Module) -> bool:
    rbf, lin = getattr(m, "rbf", None), getattr(m, "spline_linear", None)
    return (isinstance(getattr(rbf, "grid", None), torch.Tensor)
            and isinstance(getattr(lin, "weight", None), torch.Tensor))


def fastkan_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` pairs with FastKAN's rbf/spline_linear layout, in module order."""
    return [(n, m) for n, m in model.named_modules() if _is_layer(m)]


class FastKANAdapter(KANAdapter):
    """Edges of FastKAN layers (a single ``FastKANLayer`` or a stack such as ``FastKAN``)."""

    family = "fastkan"

    def __init__(self, model: nn.Module) -> None:
        found = fastkan_layers(model)
        if not found:
            raise UnsupportedModelError("no module with FastKAN's rbf.grid/spline_linear layout")
        self.names = [n for n, _ in found]
        self.layers = [m for _, m in found]
        widths: list[int] = []
        for name, m in found:
            G = int(m.rbf.grid.numel())
            out, n_g = m.spline_linear.weight.shape
            if n_g % G:
                raise UnsupportedModelError(f"FastKAN layer {name!r}: spline_linear has {n_g} inputs, "
                                            f"not a multiple of the {G} RBF centres")
            n_in = n_g // G
            if widths and n_in != widths[-1]:
                raise UnsupportedModelError(f"FastKAN layer {name!r} takes {n_in} inputs but the previous "
                                            f"layer gives {widths[-1]}; only plain stacks are supported")
            widths = widths or [n_in]
            widths.append(int(out))
        super().__init__(model, widths)
        if any(self._ln(l) is not None for l in range(self.n_layers)):
            self.input_note = NOTE_LN

    # -- layer parts ---------------------------------------------------------------------------------
    def _ln(self, l: int) -> nn.Module | None:
        ln = getattr(self.layers[l], "layernorm", None)
        return ln if isinstance(ln, nn.Module) else None

    def _base(self, l: int) -> nn.Module | None:
        m = self.layers[l]
        lin = getattr(m, "base_linear", None)
        return lin if isinstance(lin, nn.Module) and getattr(m, "use_base_update", True) else None

    def _split(self, l: int) -> bool:
        """True when base edges are separate columns (LayerNorm and base branch both present)."""
        return self._ln(l) is not None and self._base(l) is not None

    def _den(self, l: int) -> float:
        rbf = self.layers[l].rbf
        den = getattr(rbf, "denominator", None)
        if den is None:
            c = rbf.grid.detach()
            den = float((c.max() - c.min()) / (c.numel() - 1))
        return float(den)

    def edge_shape(self, l: int) -> tuple[int, int]:
        n = self.widths[l]
        return self.widths[l + 1], (2 * n if self._split(l) else n)

    def input_owner(self, l: int) -> list[int]:
        n = self.widths[l]
        return list(range(n)) * (2 if self._split(l) else 1)

    # -- evaluation ----------------------------------------------------------------------------------
    def input_map(self, l: int, h: torch.Tensor) -> torch.Tensor:
        ln = self._ln(l)
        if ln is None:
            return h
        u = F.layer_norm(h, ln.normalized_shape, None if ln.weight is None else ln.weight.detach(),
                         None if ln.bias is None else ln.bias.detach(), ln.eps)
        return torch.cat([u, h], dim=1) if self._split(l) else u

    def input_map_sympy(self, l: int, node_exprs: list[Any]) -> list[Any]:
        """``u_i = gamma_i (h_i - mean h) / sqrt(var h + eps) + beta_i`` (biased variance), as sympy."""
        import sympy

        ln = self._ln(l)
        if ln is None:
            return list(node_exprs)
        n = len(node_exprs)
        mean = sympy.Add(*node_exprs) / n
        var = sympy.Add(*[(e - mean) ** 2 for e in node_exprs]) / n
        denom = sympy.sqrt(var + sympy.Float(ln.eps))
        gam = ln.weight.tolist() if ln.weight is not None else [1.0] * n
        bet = ln.bias.tolist() if ln.bias is not None else [0.0] * n
        u = [sym_affine((e - mean) / denom, float(g), float(b)) for e, g, b in zip(node_exprs, gam, bet)]
        return u + list(node_exprs) if self._split(l) else u

    def edge_values(self, l: int, x_l: torch.Tensor) -> torch.Tensor:
        m = self.layers[l]
        n, out = self.widths[l], self.widths[l + 1]
        c = m.rbf.grid.detach()
        W = m.spline_linear.weight.detach().reshape(out, n, c.numel()).to(x_l.dtype)
        u = x_l[:, :n]
        rbf = torch.einsum("big,jig->bji", rbf_basis(u, c, self._den(l)), W)
        base_lin = self._base(l)
        if base_lin is None:
            return rbf
        act = getattr(m, "base_activation", F.silu)
        if self._split(l):
            h = x_l[:, n:]
            base = base_lin.weight.detach() * act(h).unsqueeze(1)
            return torch.cat([rbf, base], dim=2)
        return rbf + base_lin.weight.detach() * act(u).unsqueeze(1)

    def node_map(self, l: int, sub_sums: torch.Tensor) -> torch.Tensor:
        lin = self._base(l)
        if lin is None or lin.bias is None:
            return sub_sums
        return sub_sums + lin.bias.detach()

    def node_map_sympy(self, l: int, sub_exprs: list[Any]) -> list[Any]:
        lin = self._base(l)
        if lin is None or lin.bias is None:
            return list(sub_exprs)
        return [sym_affine(e, 1.0, float(b)) for e, b in zip(sub_exprs, lin.bias.tolist())]

    def mask(self, l: int) -> torch.Tensor:
        return torch.ones(self.edge_shape(l), dtype=self.dtype)

    def grid_range(self, l: int) -> torch.Tensor:
        """RBF columns: ``[min c, max c]`` of the centres; base columns: ``(-inf, inf)``."""
        c = self.layers[l].rbf.grid.detach()
        n = self.widths[l]
        rng = torch.tensor([[float(c.min()), float(c.max())]] * n, dtype=self.dtype)
        if self._split(l):
            rng = torch.cat([rng, torch.tensor([[-float("inf"), float("inf")]] * n, dtype=self.dtype)])
        return rng

    def spline_coefficients(self, l: int) -> torch.Tensor:
        """RBF weights ``(out, n_in, G)``; the base columns (LayerNorm case) get zeros."""
        m = self.layers[l]
        n, out = self.widths[l], self.widths[l + 1]
        W = m.spline_linear.weight.detach().reshape(out, n, -1)
        return torch.cat([W, torch.zeros_like(W)], dim=1) if self._split(l) else W

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Hooks record each layer's input ``h`` and its LayerNorm's output ``u`` on the model's forward."""
        lns = [f"{self.names[l]}.layernorm" for l in range(self.n_layers) if self._ln(l) is not None]
        got = _recorded_inputs(self.model, self.names, x, self.dtype, self.widths[:-1], extra=lns)
        hs, outs = got if lns else (got, {})
        result = []
        for l, h in enumerate(hs):
            if self._ln(l) is None:
                result.append(h)
                continue
            u = outs[f"{self.names[l]}.layernorm"].reshape(-1, self.widths[l])
            result.append(torch.cat([u, h], dim=1) if self._split(l) else u)
        return result
