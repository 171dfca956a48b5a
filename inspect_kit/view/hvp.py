"""Hessian-vector products of a :class:`~.core.ModelView`'s loss, for a block of vectors.

    H v = sum_b (n_b / N) d/dtheta (g_b . v),      g_b = dL_b/dtheta  (create_graph=True),

by double backward (Pearlmutter 1994, "Fast exact multiplication by the Hessian"). Attention runs on
the math kernel throughout (:func:`.core.differentiable_attention`). The gradient
graphs are built once and reused for every product when the data has at most
``CACHE_MAX_BATCHES`` batches (about 1.5x the cost of a gradient instead of about 3x, see
benchmarks/results_hessian.md). A ``(k, n)`` block of vectors is one batched backward
(``is_grads_batched``: ``vmap`` over the backward pass). A product restricted to a parameter
subset ``B`` is the diagonal block ``H_BB v`` on the same graphs.

Parameters the loss does not depend on (found on the first batch) are dropped and listed in
:attr:`HessianProducts.skipped`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import DataError, OptionError
from ..modes import model_mode
from .core import differentiable_attention

#: graphs are cached when the data has at most this many batches (``cache_graph=None``)
CACHE_MAX_BATCHES = 8


class HessianProducts:
    """``V -> H V`` on a view (see the module docstring); ``count`` products done so far."""

    def __init__(self, view: Any, *, cache_graph: bool | None = None,
                 vectorize: bool = True) -> None:
        self.view = view
        self.vectorize = bool(vectorize)
        self.count = 0
        self._leaves = {n: view.state[n].detach().clone().requires_grad_(True)
                        for n in view.names}
        with model_mode(view.model, view.model_mode, warn=True):  # warns about dropout/BN once
            pass
        n_batches = len(view.batches)
        self.cache_graph = bool(n_batches <= CACHE_MAX_BATCHES if cache_graph is None
                                else cache_graph)
        b0 = view.batches[0]
        try:
            grads = self._batch_grads(b0, list(self._leaves),
                                      create_graph=self.cache_graph and n_batches == 1)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise DataError(
                f"cannot evaluate the loss of the model on the data ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300]}); check that the inputs have the shape the "
                "model expects, the targets suit the loss, and the model runs with "
                "torch.func.functional_call") from exc
        used = [n for n, g in zip(self._leaves, grads) if g is not None]
        self.skipped = [n for n in self._leaves if n not in used]
        if not used:
            raise OptionError("the loss depends on none of the selected parameters")
        if self.skipped:
            warnings.warn(f"skipping parameters the loss does not use: {self.skipped}",
                          stacklevel=3)
        self.names = used
        self.n = sum(view.sizes[n] for n in used)
        self._cache: list[tuple[list[torch.Tensor], float]] | None = None
        if self.cache_graph:
            if n_batches == 1:
                self._cache = [([g for g in grads if g is not None], view.weight(b0))]
            else:
                self._cache = [(self._batch_grads(b, used, create_graph=True), view.weight(b))
                               for b in view.batches]

    def _batch_grads(self, b: Any, names: list[str], create_graph: bool
                     ) -> list[torch.Tensor | None]:
        view = self.view
        with torch.enable_grad(), view.mode(), differentiable_attention():
            state = view.full_state(self._leaves)
            value = view.batch_loss(state, b)
            return list(torch.autograd.grad(value, [self._leaves[n] for n in names],
                                            create_graph=create_graph, allow_unused=True))

    def _graphs(self, names: list[str]) -> Iterator[tuple[list[torch.Tensor | None], float]]:
        if self._cache is not None:
            idx = [self.names.index(n) for n in names]
            for grads, w in self._cache:
                yield [grads[i] for i in idx], w
        else:
            for b in self.view.batches:
                yield self._batch_grads(b, names, create_graph=True), self.view.weight(b)

    def matvec(self, v: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """``H_BB v`` for the parameters ``names`` (default: all used ones); ``v`` is ``(n_B,)``
        or a block ``(k, n_B)``."""
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
        pieces, i = [], 0
        for name in names:
            s = view.sizes[name]
            pieces.append(V[:, i:i + s].reshape(k, *view.shapes[name]))
            i += s
        out = torch.zeros(k, n, dtype=view.dtype, device=view.device)
        leaves = [self._leaves[name] for name in names]
        for grads, w in self._graphs(names):
            keep = [j for j, g in enumerate(grads) if g is not None and g.requires_grad]
            if not keep:
                continue
            outs = [grads[j] for j in keep]
            gouts = [pieces[j] if k > 1 else pieces[j][0] for j in keep]
            with differentiable_attention():
                hv = torch.autograd.grad(outs, leaves, grad_outputs=gouts, retain_graph=True,
                                         allow_unused=True, is_grads_batched=k > 1)
            flat = [(h.reshape(k, -1) if h is not None else
                     torch.zeros(k, view.sizes[name], dtype=view.dtype, device=view.device))
                    for h, name in zip(hv, names)]
            out.add_(torch.cat(flat, dim=1), alpha=w)
        self.count += k
        return out[0] if single else out
