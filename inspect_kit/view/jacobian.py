"""Products with the Jacobian of a view's outputs with respect to its parameters.

For a batch ``b`` with outputs ``z = f(theta; x_b)`` of shape ``(n_b, *O)`` and the flat selected
parameters ``theta`` (``n`` entries), the Jacobian is ``J_b = dz / dtheta``, shape
``(n_b, *O, n)``. Three operations, all for a block of ``k`` vectors at once:

* :func:`jvp`: ``J_b V^T`` for ``V`` of shape ``(k, n)`` -> ``(k, n_b, *O)``, by forward-mode
  differentiation (``torch.func.jvp`` under ``vmap`` over the ``k`` tangents); models whose ops
  lack forward-mode rules fall back to the double-backward trick
  ``J v = d/du [(J^T u) . v]`` (Pearlmutter 1994);
* :func:`vjp`: ``U J_b`` for output cotangents ``U`` of shape ``(k, n_b, *O)`` -> ``(k, n)``, by
  one batched backward (``is_grads_batched``);
* :func:`jacobian`: the full ``(n_b, *O, n)`` matrix (``torch.func.jacrev``), for small models.

These are the building blocks of the Gauss-Newton matrix ``G = sum_b w_b J_b^T H_b J_b`` and of
the empirical neural tangent kernel ``Theta(x, x') = J(x) J(x')^T`` (Jacot et al. 2018).
Evaluation is functional (the model is never edited) and runs in the view's model mode.

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> net = nn.Linear(3, 2)
>>> x = torch.randn(4, 3)
>>> view = ModelView(net, (x, torch.zeros(4, 2)), dtype="float64")
>>> J = jacobian(view, view.batches[0])          # (4, 2, 8): outputs x (weight, bias)
>>> V = torch.randn(5, view.n, dtype=torch.float64)
>>> bool(torch.allclose(jvp(view, V, view.batches[0]), torch.einsum("boN,kN->kbo", J, V)))
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch.func import jacrev, vmap
from torch.func import jvp as fjvp

from .core import differentiable_attention


def _output_fn(view: Any, b: Any) -> Any:
    def f(flat: torch.Tensor) -> torch.Tensor:
        return view.call(view.full_state(flat), b)

    return f


def jvp(view: Any, V: torch.Tensor, b: Any) -> torch.Tensor:
    """``J_b v`` for every row ``v`` of ``V`` (``(k, n)`` or ``(n,)``) -> ``(k, n_b, *O)``."""
    single = V.dim() == 1
    V = (V.reshape(1, -1) if single else V).to(view.device, view.dtype)
    f = _output_fn(view, b)
    theta = view.theta
    with view.mode(), differentiable_attention():
        try:
            out = vmap(lambda v: fjvp(f, (theta,), (v,))[1])(V)
        except (RuntimeError, NotImplementedError):  # no forward-mode rule: double backward
            out = _jvp_double_backward(view, f, V)
    return out[0] if single else out


def _jvp_double_backward(view: Any, f: Any, V: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        leaf = view.theta.detach().clone().requires_grad_(True)
        z = f(leaf)
        u = torch.zeros_like(z, requires_grad=True)
        g, = torch.autograd.grad(z, leaf, grad_outputs=u, create_graph=True)  # J^T u
        outs = []
        for v in V:  # d/du (J^T u . v) = J v
            jv, = torch.autograd.grad(g, u, grad_outputs=v, retain_graph=True)
            outs.append(jv)
    return torch.stack(outs).detach()


def vjp(view: Any, U: torch.Tensor, b: Any) -> torch.Tensor:
    """``J_b^T u`` for every output cotangent ``u`` in ``U`` (``(k, n_b, *O)``) -> ``(k, n)``."""
    with torch.enable_grad(), view.mode(), differentiable_attention():
        leaf = view.theta.detach().clone().requires_grad_(True)
        z = _output_fn(view, b)(leaf)
        if U.shape[1:] != z.shape:
            from ..errors import OptionError

            raise OptionError(f"cotangents of shape {tuple(U.shape)} do not match the outputs "
                              f"{tuple(z.shape)} (expected (k, *outputs))")
        U = U.to(z.dtype)
        k = U.shape[0]
        g, = torch.autograd.grad(z, leaf, grad_outputs=U if k > 1 else U[0],
                                 is_grads_batched=k > 1)
    return g.reshape(k, -1).detach()


def jacobian(view: Any, b: Any, *, chunk_size: int | None = None) -> torch.Tensor:
    """The full Jacobian ``(n_b, *O, n)`` of the outputs on batch ``b`` (small models only)."""
    with view.mode(), differentiable_attention():
        return jacrev(_output_fn(view, b), chunk_size=chunk_size)(view.theta).detach()
