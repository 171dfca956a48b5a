"""One small protocol for every KAN family: evaluate each edge ``phi[l][j, i]`` from the weights.

A KAN layer ``l`` maps node values ``h_l (B, widths[l])`` to ``h_{l+1} (B, widths[l+1])`` in three
steps, and every adapter exposes each step:

1. ``e = input_map(l, h_l)`` -> ``(B, n_in)``: what the edges see. Identity for the zoo KAN, pykan
   and efficient-kan. FastKAN with LayerNorm feeds its RBF edges ``u = LayerNorm(h)`` and its base
   edges ``h``, so there ``n_in = 2 * widths[l]`` (columns ``0..n-1`` are ``u``, ``n..2n-1`` are
   ``h``; ``input_owner(l)`` says which node each column belongs to).
2. ``phi = edge_values(l, e)`` -> ``(B, n_sub_out, n_in)``: one univariate function per edge,
   ``phi[:, j, i]`` depends on ``e[:, i]`` only. Computed from the state-dict tensors with the
   family's published formula (masks and pykan's symbolic branch included), never by calling the
   module.
3. ``h_{l+1} = node_map(l, phi.sum(-1))``: sub-node sums -> node values (zoo: ``+ bias``; pykan:
   sub-node affine, products of ``mult_arity`` consecutive sub-nodes, node affine; efficient-kan:
   identity; FastKAN: ``+ base_linear.bias``). ``subnode_owner(l)`` says which node each sub-node
   feeds.

``forward_from_edges(x)`` chains the three steps; the tests check it against the model's own
forward to 1e-6, which is what makes ``edge_values`` trustworthy. ``node_map_sympy`` and
``input_map_sympy`` are the same maps on sympy expressions, for composing a formula.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from ..errors import DataError


class KANAdapter(abc.ABC):
    """Base class of the per-family adapters (see the module docstring for the contract).

    Attributes:
        family: "zoo", "pykan", "efficient_kan" or "fastkan".
        n_layers: number of edge layers.
        widths: node counts, ``widths[0]`` inputs ... ``widths[-1]`` outputs.
        input_note: what the edge inputs are when they are not the node values (FastKAN), else None.
        model: the wrapped module (read only; adapters never modify it).
    """

    family: str = ""
    input_note: str | None = None

    def __init__(self, model: Any, widths: list[int]) -> None:
        self.model = model
        self.widths = [int(w) for w in widths]
        self.n_layers = len(self.widths) - 1

    # -- shapes --------------------------------------------------------------------------------
    @abc.abstractmethod
    def edge_shape(self, l: int) -> tuple[int, int]:
        """``(n_sub_out, n_in)`` of layer ``l``'s edge matrix."""

    def subnode_owner(self, l: int) -> list[int]:
        """For each output sub-node of layer ``l``, the index of the node (in layer l+1) it feeds."""
        return list(range(self.edge_shape(l)[0]))

    def input_owner(self, l: int) -> list[int]:
        """For each edge-input column of layer ``l``, the node (in layer l) it is computed from."""
        return list(range(self.edge_shape(l)[1]))

    @property
    def dtype(self) -> torch.dtype:
        for p in self._tensors():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    def _tensors(self) -> list[torch.Tensor]:
        return list(self.model.parameters()) + list(self.model.buffers())

    # -- the three steps -----------------------------------------------------------------------
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten a batch to ``(B, widths[0])`` in the model's dtype."""
        x = torch.as_tensor(x)
        x = x.reshape(len(x), -1).to(self.dtype)
        if x.shape[1] != self.widths[0]:
            raise DataError(f"this {self.family} KAN takes {self.widths[0]} input features, the data has "
                            f"{x.shape[1]}; pass data of the model's input width")
        return x

    def input_map(self, l: int, h: torch.Tensor) -> torch.Tensor:
        """Edge inputs of layer ``l`` from its node values (identity unless overridden)."""
        return h

    def input_map_sympy(self, l: int, node_exprs: list[Any]) -> list[Any]:
        """:meth:`input_map` on sympy expressions (identity unless overridden)."""
        return list(node_exprs)

    @abc.abstractmethod
    def edge_values(self, l: int, x_l: torch.Tensor) -> torch.Tensor:
        """Every edge's value: edge inputs ``(B, n_in)`` -> ``(B, n_sub_out, n_in)``."""

    @abc.abstractmethod
    def node_map(self, l: int, sub_sums: torch.Tensor) -> torch.Tensor:
        """Summed edge outputs ``(B, n_sub_out)`` -> node values ``(B, widths[l+1])``."""

    @abc.abstractmethod
    def node_map_sympy(self, l: int, sub_exprs: list[Any]) -> list[Any]:
        """:meth:`node_map` on a list of ``n_sub_out`` sympy expressions."""

    @abc.abstractmethod
    def mask(self, l: int) -> torch.Tensor:
        """``(n_sub_out, n_in)``: 1 where the edge is active, 0 where it is masked out."""

    @abc.abstractmethod
    def grid_range(self, l: int) -> torch.Tensor:
        """``(n_in, 2)``: the interval each edge input's grid covers (±inf where there is none)."""

    def spline_coefficients(self, l: int) -> torch.Tensor | None:
        """Effective spline coefficients ``(n_sub_out, n_in, n_basis)`` (scales and masks folded in).

        Used by the coefficient-norm feature importances; None when the family has none.
        """
        return None

    def symbolic_edge(self, l: int, j: int, i: int) -> tuple[str, Any, tuple[float, ...]] | None:
        """``(name, sympy function, (a, b, c, d))`` of an edge fixed to a formula (pykan), else None."""
        return None

    @abc.abstractmethod
    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per layer, the ``(B, n_in)`` edge inputs seen when the model runs on ``x``."""

    # -- composed ----------------------------------------------------------------------------------
    def forward_from_edges(self, x: torch.Tensor, *, return_inputs: bool = False) -> Any:
        """The network output computed only through input_map / edge_values / node_map.

        With ``return_inputs`` also returns the per-layer edge inputs (a list).
        """
        h = self.prepare_input(x)
        inputs = []
        for l in range(self.n_layers):
            e = self.input_map(l, h)
            inputs.append(e)
            h = self.node_map(l, self.edge_values(l, e).sum(-1))
        return (h, inputs) if return_inputs else h

    def __repr__(self) -> str:
        return f"{type(self).__name__}(family={self.family!r}, widths={self.widths})"


def sym_affine(expr: Any, scale: float, bias: float) -> Any:
    """``scale * expr + bias`` as sympy, leaving out a unit scale and a zero bias."""
    import sympy

    out = expr if scale == 1.0 else sympy.Float(scale) * expr
    return out if bias == 0.0 else out + sympy.Float(bias)
