"""Gauss-Newton and Fisher products of a :class:`~.core.ModelView`, for a block of vectors.

For batches ``b`` with outputs ``z_b = f(theta; x_b)`` (``n_b`` samples) and batch mean losses
``L_b(z_b)``, with ``J_b = dz_b / dtheta``:

* **GGN** (generalised Gauss-Newton; Schraudolph 2002, Martens 2020):
  ``G = sum_b (n_b / N) J_b^T [d^2 L_b / dz_b^2] J_b``, the Hessian with the second-order term
  of the network dropped; positive semi-definite for convex losses. The output Hessian is
  applied by double backward of ``L_b`` in ``z_b``, so any loss works; for cross-entropy it is
  ``(diag(p_i) - p_i p_i^T) / n_b`` per sample, for the element mean squared error
  ``2 I / (n_b C)``.
* **Fisher** (Monte Carlo, Amari 1998; Kunstner et al. 2019): ``F = (1/N) sum_i E_{y ~ p(y|z_i)}
  [g_i(y) g_i(y)^T]`` with ``g_i(y) = J_i^T grad_z l(z_i, y)`` the per-sample gradient at a label
  drawn from the model's predictive distribution: the categorical softmax for cross-entropy,
  and for the per-sample squared error ``l = (1/C) sum_c (z_c - y_c)^2`` the Gaussian whose
  negative log-likelihood it is, ``y ~ N(z, (C/2) I)``; estimated with ``mc_samples`` seeded
  draws per sample. Its expectation equals the GGN for
  these losses (their canonical links).
* **empirical Fisher** (uncentred gradient covariance): ``(1/N) sum_i g_i g_i^T`` at the true
  labels; ``g_i = n_b J_i^T dL_b/dz_i`` is the per-sample gradient of the batch mean loss.

One product is ``J^T (M (J V))`` for the block ``V``: the Jacobian-vector products run by double
backward on a cached forward graph (``J v = d/du [(J^T u) . v]``), the transposed ones by one
batched backward on the same graph; graphs are cached when the data has at most
``CACHE_MAX_BATCHES`` batches. Restriction to a parameter subset gives the diagonal block.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..losses import causal_lm, cross_entropy, mse
from .core import differentiable_attention
from .hvp import CACHE_MAX_BATCHES

KINDS = ("ggn", "fisher", "empirical_fisher")


class _Graphs:
    """Per batch: outputs with their graph, ``g(u) = J^T u`` with its graph, the loss's output
    gradient and Hessian graph, the per-sample output gradients (EF) or sampled ones (MC)."""

    def __init__(self, products: GaussNewtonProducts, b: Any, index: int) -> None:
        view = products.view
        leaves = [products.leaves[n] for n in view.names]
        state = view.full_state(dict(zip(view.names, leaves)))
        self.z = view.call(state, b)
        self.u = torch.zeros_like(self.z, requires_grad=True)
        self.g = torch.autograd.grad(self.z, leaves, grad_outputs=self.u, create_graph=True,
                                     allow_unused=True)
        self.weight = view.weight(b)
        self.n = b.n
        zd = self.z.detach().requires_grad_(True)
        self.zd = zd
        loss = view.loss_fn(zd, b.target)
        self.dL, = torch.autograd.grad(loss, zd, create_graph=products.kind == "ggn")
        if products.kind == "empirical_fisher":
            self.r = (self.dL * b.n).detach().unsqueeze(0)  # (1, n_b, *O)
        elif products.kind == "fisher":
            self.r = products.sampled_gradients(self.z.detach(), index)  # (S, n_b, *O)

    def jvp(self, leaves: list[torch.Tensor], V: list[torch.Tensor], k: int) -> torch.Tensor:
        """``J v`` for the ``k`` tangents (pieces per parameter, leading axis ``k``)."""
        outs = [g for g in self.g if g is not None]
        vs = [v for g, v in zip(self.g, V) if g is not None]
        jv, = torch.autograd.grad(outs, self.u, grad_outputs=vs if k > 1 else [v[0] for v in vs],
                                  retain_graph=True, is_grads_batched=k > 1)
        return jv if k > 1 else jv.unsqueeze(0)

    def vjp(self, leaves: list[torch.Tensor], U: torch.Tensor) -> list[torch.Tensor | None]:
        k = U.shape[0]
        return list(torch.autograd.grad(self.z, leaves, grad_outputs=U if k > 1 else U[0],
                                        retain_graph=True, allow_unused=True,
                                        is_grads_batched=k > 1))

    def middle(self, kind: str, JV: torch.Tensor) -> torch.Tensor:
        """The output-space matrix applied to ``J V`` (``(k, n_b, *O)``)."""
        if kind == "ggn":
            k = JV.shape[0]
            hu, = torch.autograd.grad(self.dL, self.zd, grad_outputs=JV if k > 1 else JV[0],
                                      retain_graph=True, is_grads_batched=k > 1)
            return hu if k > 1 else hu.unsqueeze(0)
        # (1/n_b) sum over draws s of r_s (r_s . J v), per sample (the batch weight adds n_b/N)
        R = self.r
        dims = tuple(range(3, R.dim() + 1))  # the output axes of (k, S, n_b, *O)
        s = (R.unsqueeze(0) * JV.unsqueeze(1)).sum(dim=dims, keepdim=True)  # (k, S, n_b, 1..)
        return (s * R.unsqueeze(0)).mean(1) / self.n


class GaussNewtonProducts:
    """``V -> C V`` for ``C`` the GGN, the Monte-Carlo Fisher or the empirical Fisher."""

    def __init__(self, view: Any, kind: str = "ggn", *, mc_samples: int = 1, seed: int = 0,
                 cache_graph: bool | None = None, vectorize: bool = True) -> None:
        if kind not in KINDS:
            raise OptionError(f"curvature must be one of {('hessian', *KINDS)}, got {kind!r}")
        if view.model_loss:
            raise OptionError(f"curvature={kind!r} needs the loss as a function of the outputs; "
                              "loss='model' hides it: pass a loss name or callable")
        self.view, self.kind = view, kind
        self.mc_samples, self.seed = int(mc_samples), int(seed)
        if self.mc_samples < 1:
            raise OptionError(f"mc_samples must be >= 1, got {mc_samples}")
        self.vectorize = bool(vectorize)
        self.count = 0
        self.names = list(view.names)
        self.skipped: list[str] = []
        self.n = view.n
        self.leaves = {n: view.state[n].detach().clone().requires_grad_(True) for n in view.names}
        n_batches = len(view.batches)
        self.cache_graph = bool(n_batches <= CACHE_MAX_BATCHES if cache_graph is None
                                else cache_graph)
        self._cache: list[_Graphs] | None = None
        if self.cache_graph:
            with torch.enable_grad(), view.mode(), differentiable_attention():
                self._cache = [_Graphs(self, b, i) for i, b in enumerate(view.batches)]

    def sampled_gradients(self, z: torch.Tensor, index: int) -> torch.Tensor:
        """``mc_samples`` per-sample output gradients at labels drawn from the model
        (``(S, n_b, *O)``, seeded by the batch index)."""
        g = torch.Generator(device=z.device).manual_seed(self.seed * 1000003 + index)
        loss = self.view.loss_fn
        S = self.mc_samples
        if loss in (cross_entropy, F.cross_entropy) and z.dim() == 2:
            p = torch.softmax(z, dim=-1)
            y = torch.multinomial(p, S, replacement=True, generator=g).T  # (S, n_b)
            return p.unsqueeze(0) - F.one_hot(y, z.shape[-1]).to(z.dtype)
        if loss is mse:
            c = z[0].numel()
            eps = torch.randn((S, *z.shape), generator=g, dtype=z.dtype, device=z.device)
            return -eps * (2.0 / c) ** 0.5  # grad of mean_c (z - y)^2 at y = z + sqrt(C/2) eps
        if loss is causal_lm:
            raise OptionError("curvature='fisher' for causal language models is not supported; "
                              "use 'ggn' (its expectation) or 'empirical_fisher'")
        raise OptionError("curvature='fisher' samples labels from the model: it supports "
                          "loss='cross_entropy' (class logits) and 'mse'; use 'ggn' (equal in "
                          "expectation) or 'empirical_fisher' for other losses")

    def _graphs(self) -> Any:
        if self._cache is not None:
            yield from self._cache
            return
        view = self.view
        for i, b in enumerate(view.batches):
            with torch.enable_grad(), view.mode(), differentiable_attention():
                yield _Graphs(self, b, i)

    def matvec(self, v: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """``C_BB v`` for the parameters ``names`` (default all); ``v`` is ``(n_B,)`` or
        ``(k, n_B)``."""
        view = self.view
        names = self.names if names is None else list(names)
        n = sum(view.sizes[k] for k in names)
        single = v.dim() == 1
        V = v.reshape(1, -1) if single else v
        if V.dim() != 2 or V.shape[-1] != n:
            raise OptionError(f"vector of shape {tuple(v.shape)}: the operator acts on (n,) or "
                              f"(k, n) with n = {n}")
        V = V.to(view.device, view.dtype)
        k = V.shape[0]
        if k > 1 and not self.vectorize:
            return torch.stack([self.matvec(row, names) for row in V])
        pieces, i = {}, 0
        for name in names:
            s = view.sizes[name]
            pieces[name] = V[:, i:i + s].reshape(k, *view.shapes[name])
            i += s
        full = [pieces[nm] if nm in pieces else
                torch.zeros(k, *view.shapes[nm], dtype=view.dtype, device=view.device)
                for nm in view.names]
        leaves = [self.leaves[nm] for nm in view.names]
        out = torch.zeros(k, n, dtype=view.dtype, device=view.device)
        with differentiable_attention():
            for gr in self._graphs():
                JV = gr.jvp(leaves, full, k)
                M = gr.middle(self.kind, JV)
                parts = gr.vjp(leaves, M.detach())
                by_name = dict(zip(view.names, parts))
                flat = [(by_name[nm].reshape(k, -1) if by_name[nm] is not None else
                         torch.zeros(k, view.sizes[nm], dtype=view.dtype, device=view.device))
                        for nm in names]
                out.add_(torch.cat(flat, dim=1), alpha=gr.weight)
        self.count += k
        return out[0] if single else out
