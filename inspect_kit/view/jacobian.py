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
* :func:`jacobian`: the full ``(n_b, *O, n)`` matrix (``torch.func.jacrev``), for small models;
* :func:`per_sample_jacobian`: the same matrix by ``vmap`` over samples of ``jacrev`` on one
  sample (``n_b |O|`` single-sample backward passes instead of ``n_b |O|`` full-batch ones);
* :func:`safe_jvp`: :func:`jvp` inside :func:`autodiff_attention`, where the fused
  ``nn.TransformerEncoderLayer`` fast path (no forward-mode rule) is off, so encoders get true
  forward-mode products instead of the double-backward fallback.

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

import contextlib
from collections.abc import Iterator
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


@contextlib.contextmanager
def autodiff_attention() -> Iterator[None]:
    """:func:`.core.differentiable_attention` (SDPA on its math kernel) with the
    ``nn.TransformerEncoderLayer`` fast path off, flags restored on exit.

    The encoder layer takes a fused path (``_transformer_encoder_layer_fwd``, no forward-mode
    rule and no ``vmap`` batching rule) whenever no input requires grad, which is the case
    inside ``torch.func.jvp`` and ``vmap``; ``torch.backends.mha.set_fastpath_enabled(False)``
    sends it through the modules every transform supports. Same function, to rounding.
    """
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with differentiable_attention():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _one_sample(b: Any) -> tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword inputs of ``b`` with the ``vmap`` in_dims that map the sample
    axis (tensors whose leading size is ``n_b``) and leave everything else whole."""
    def dim(v: Any) -> int | None:
        return 0 if isinstance(v, torch.Tensor) and v.dim() and len(v) == b.n else None

    return (tuple(b.args), dict(b.kwargs), tuple(dim(a) for a in b.args),
            {k: dim(v) for k, v in b.kwargs.items()})


def per_sample_jacobian(view: Any, b: Any, *, chunk_size: int | None = None) -> torch.Tensor:
    """The Jacobian ``(n_b, *O, n)`` of batch ``b``'s outputs, one sample at a time.

    :func:`jacobian` differentiates the batch output, so each of its ``n_b |O|`` backward passes
    runs over the whole batch (cost ``n_b^2 |O|`` forward passes). Here ``vmap`` maps ``jacrev``
    of the model on a batch of one over the samples (the recipe of the ``torch.func`` NTK
    tutorial and of neural-tangents' ``vmap_axes=0``): ``n_b |O|`` single-sample backward
    passes. It assumes the samples do not interact, so in ``model_mode="train"`` (BatchNorm
    statistics couple a batch) and for models ``vmap`` cannot map, the batch Jacobian is used.

    >>> import torch
    >>> from torch import nn
    >>> from inspect_kit.view import ModelView
    >>> view = ModelView(nn.Linear(3, 2), (torch.randn(4, 3),), dtype="float64")
    >>> b = view.batches[0]
    >>> bool(torch.allclose(per_sample_jacobian(view, b), jacobian(view, b)))
    True
    """
    if view.model_mode == "train":
        with autodiff_attention():
            return jacobian(view, b, chunk_size=chunk_size)
    from .batches import Batch

    args, kwargs, arg_dims, kw_dims = _one_sample(b)

    def one(named: dict[str, torch.Tensor], a: tuple[Any, ...], kw: dict[str, Any]
            ) -> torch.Tensor:
        a1 = tuple(x.unsqueeze(0) if d == 0 else x for x, d in zip(a, arg_dims))
        kw1 = {k: (v.unsqueeze(0) if kw_dims[k] == 0 else v) for k, v in kw.items()}
        return view.call(view.full_state(named), Batch(a1, kw1, None, 1))[0]

    # differentiate w.r.t. the named tensors, not the flat vector: the backward of slicing a
    # flat vector writes a full-length gradient per tensor, per output row
    named = {k: v.detach() for k, v in view.unflatten(view.theta).items()}
    with view.mode(), autodiff_attention():
        try:
            parts = vmap(jacrev(one), in_dims=(None, arg_dims, kw_dims),
                         chunk_size=chunk_size)(named, args, kwargs)
            lead = next(iter(parts.values())).shape[:-len(view.shapes[view.names[0]]) or None]
            return torch.cat([parts[k].reshape(*lead, -1) for k in view.names], -1).detach()
        except (RuntimeError, NotImplementedError, ValueError):  # vmap cannot map the model
            rows = [jacrev(_output_fn(view, b.take(torch.tensor([i]))))(view.theta)[0]
                    for i in range(b.n)]
            return torch.stack(rows).detach()


def safe_jvp(view: Any, V: torch.Tensor, b: Any) -> torch.Tensor:
    """:func:`jvp` inside :func:`autodiff_attention` (transformer encoders work too)."""
    with autodiff_attention():
        return jvp(view, V, b)

