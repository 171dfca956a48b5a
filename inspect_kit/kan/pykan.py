"""Adapter for pykan's ``MultKAN`` / ``KAN`` (pykan 0.2.8), read from its tensors.

pykan stores the numeric layer ``act_fun[l]`` in ``[in, out]`` order and the symbolic layer
``symbolic_fun[l]`` in ``[out, in]`` order; this adapter always answers in ``[out, in]``:

    phi[j, i](x) = nmask[i, j] * (scale_base[i, j] * b(x)
                                  + scale_sp[i, j] * sum_m coef[i, j, m] B_m(x; grid[i]))
                 + smask[j, i] * (c f_{j,i}(a x + b) + d),      (a, b, c, d) = affine[j, i]
    s_j = subnode_scale[j] * sum_i phi[j, i] + subnode_bias[j]
    mult node m (arity r): product of r consecutive sub-nodes after the n_sum plain ones
    h_{l+1} = node_scale * [s_plain, products] + node_bias

The symbolic branch counts only when ``model.symbolic_enabled`` (as in pykan's forward). Unlike
pykan's forward, masked symbolic edges are not evaluated, so a masked ``1/x`` cannot turn into NaN.
"""

from __future__ import annotations

from typing import Any

import torch

from ..hooks import capture
from .basis import bspline_basis, spline_order
from .protocol import KANAdapter, sym_affine

#: attributes pykan's forward overwrites (its activation cache); restored after our own forward
PYKAN_CACHE = ("cache_data", "acts", "acts_premult", "spline_preacts", "spline_postsplines",
               "spline_postacts", "acts_scale", "acts_scale_spline", "subnode_actscale", "edge_actscale")


def is_pykan(model: Any) -> bool:
    """True for pykan's MultKAN/KAN (checked by module name first, so pykan is imported only then)."""
    if not type(model).__module__.startswith("kan."):
        return False
    try:
        from kan.MultKAN import MultKAN
    except ImportError:  # pragma: no cover - pykan not installed
        return False
    return isinstance(model, MultKAN)


class PykanAdapter(KANAdapter):
    """Edges of a pykan ``MultKAN`` (mixed spline + symbolic edges, masks, affines, mult nodes)."""

    family = "pykan"

    def __init__(self, model: Any) -> None:
        super().__init__(model, list(model.width_in))

    # -- structure ---------------------------------------------------------------------------------
    def edge_shape(self, l: int) -> tuple[int, int]:
        n_in, n_out = self.model.act_fun[l].mask.shape
        return int(n_out), int(n_in)

    def arities(self, l: int) -> list[int]:
        """Arity of every mult node of node layer ``l + 1``."""
        n_mult = int(self.model.width[l + 1][1])
        ma = self.model.mult_arity
        return [int(ma)] * n_mult if isinstance(ma, int) else [int(a) for a in ma[l + 1]]

    def subnode_owner(self, l: int) -> list[int]:
        n_sum = int(self.model.width[l + 1][0])
        owner = list(range(n_sum))
        for m, a in enumerate(self.arities(l)):
            owner += [n_sum + m] * a
        return owner

    # -- evaluation --------------------------------------------------------------------------------
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        x = x.reshape(len(x), -1)
        ids = self.model.input_id.long()
        if x.shape[1] > int(ids.max()):
            x = x[:, ids]
        return super().prepare_input(x)

    def _symbolic_on(self, l: int) -> torch.Tensor:
        smask = self.model.symbolic_fun[l].mask.detach()
        return smask if self.model.symbolic_enabled else torch.zeros_like(smask)

    def edge_values(self, l: int, x_l: torch.Tensor) -> torch.Tensor:
        act = self.model.act_fun[l]
        coef, grid = act.coef.detach(), act.grid.detach()
        basis = bspline_basis(x_l, grid, spline_order(grid, coef))  # (B, in, G+k)
        spline = torch.einsum("bim,ijm->bji", basis, coef.to(x_l.dtype))
        base = act.base_fun(x_l).unsqueeze(1)  # (B, 1, in)
        numeric = act.mask.detach().T * (act.scale_base.detach().T * base + act.scale_sp.detach().T * spline)
        smask = self._symbolic_on(l)
        if not bool((smask != 0).any()):
            return numeric
        sym = self.model.symbolic_fun[l]
        extra = torch.zeros_like(numeric)
        for j, i in (smask != 0).nonzero().tolist():
            a, b, c, d = sym.affine[j, i].detach().to(x_l.dtype)
            f = sym.funs[j][i]
            extra[:, j, i] = smask[j, i] * (c * f(a * x_l[:, i : i + 1] + b).reshape(-1) + d)
        return numeric + extra

    def node_map(self, l: int, sub_sums: torch.Tensor) -> torch.Tensor:
        m = self.model
        s = m.subnode_scale[l].detach() * sub_sums + m.subnode_bias[l].detach()
        n_sum = int(m.width[l + 1][0])
        parts, start = [s[:, :n_sum]], n_sum
        for a in self.arities(l):
            parts.append(torch.prod(s[:, start : start + a], dim=1, keepdim=True))
            start += a
        h = torch.cat(parts, dim=1)
        return m.node_scale[l].detach() * h + m.node_bias[l].detach()

    def node_map_sympy(self, l: int, sub_exprs: list[Any]) -> list[Any]:
        import sympy

        m = self.model
        ss, sb = m.subnode_scale[l].tolist(), m.subnode_bias[l].tolist()
        s = [sym_affine(e, float(a), float(b)) for e, a, b in zip(sub_exprs, ss, sb)]
        n_sum = int(m.width[l + 1][0])
        nodes, start = s[:n_sum], n_sum
        for a in self.arities(l):
            nodes.append(sympy.Mul(*s[start : start + a]))
            start += a
        ns, nb = m.node_scale[l].tolist(), m.node_bias[l].tolist()
        return [sym_affine(e, float(a), float(b)) for e, a, b in zip(nodes, ns, nb)]

    def mask(self, l: int) -> torch.Tensor:
        on = (self.model.act_fun[l].mask.detach().T != 0) | (self._symbolic_on(l) != 0)
        return on.to(self.dtype)

    def numeric_mask(self, l: int) -> torch.Tensor:
        """pykan's spline-branch mask in ``[out, in]`` order."""
        return self.model.act_fun[l].mask.detach().T.clone()

    def symbolic_mask(self, l: int) -> torch.Tensor:
        """pykan's symbolic-branch mask ``[out, in]`` (zeros when ``symbolic_enabled`` is off)."""
        return self._symbolic_on(l).clone()

    def grid_range(self, l: int) -> torch.Tensor:
        act = self.model.act_fun[l]
        k = spline_order(act.grid, act.coef)
        g = act.grid.detach()
        return torch.stack([g[:, k], g[:, g.shape[1] - 1 - k]], dim=1)

    def spline_coefficients(self, l: int) -> torch.Tensor:
        act = self.model.act_fun[l]
        scale = (act.mask * act.scale_sp).detach().T  # (out, in)
        return scale.unsqueeze(-1) * act.coef.detach().permute(1, 0, 2)

    def symbolic_edge(self, l: int, j: int, i: int) -> tuple[str, Any, tuple[float, ...]] | None:
        if float(self._symbolic_on(l)[j, i]) == 0.0:
            return None
        sym = self.model.symbolic_fun[l]
        return sym.funs_name[j][i], sym.funs_sympy[j][i], tuple(float(v) for v in sym.affine[j, i].detach())

    def layer_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """pykan's own forward on ``x`` with hooks on ``act_fun.{l}`` recording each layer's input.

        pykan's forward overwrites its activation cache (``cache_data``, ``acts``, ...); those
        attributes are put back afterwards, so the model's "last forward" is what it was.
        """
        m = self.model
        saved = {name: m.__dict__[name] for name in PYKAN_CACHE if name in m.__dict__}
        names = [f"act_fun.{l}" for l in range(self.n_layers)]
        try:
            x = torch.as_tensor(x)
            x = x.reshape(len(x), -1).to(self.dtype)  # pykan selects input_id columns itself
            with torch.no_grad(), capture(m, names, inputs=True, outputs=False) as rec:
                m(x)
            return [rec.input(n, call=0) for n in names]
        finally:
            for name in PYKAN_CACHE:
                if name in saved:
                    m.__dict__[name] = saved[name]
                else:
                    m.__dict__.pop(name, None)
