"""Class and cross-class structure of the Gauss-Newton matrix of a C-class classifier (Papyan).

For cross-entropy with softmax probabilities ``p_i`` the output Hessian is
``diag(p_i) - p_i p_i^T = sum_c' p_ic' (e_c' - p_i)(e_c' - p_i)^T``, so the GGN is a second moment
of ``N * C`` logit gradients (Papyan 2019, "Measurements of three-level hierarchical structure in
the outliers in the spectrum of deepnet Hessians", ICML; Papyan 2020, "Traces of class/cross-class
structure pervade deep learning spectra", JMLR):

    G = (1/N) sum_i sum_c' d_ic' d_ic'^T,        d_ic' = sqrt(p_ic') J_i^T (e_c' - p_i).

Grouping the samples by their class ``c`` gives the ``C^2`` means
``d_cc' = mean_{i in c} d_ic'`` and ``G = G_means + (within-group second moments)`` with

    G_means = sum_c pi_c sum_c' d_cc' d_cc'^T          (pi_c = N_c / N, rank <= C^2).

The means decompose in two ways (both exact: the parts are Gram matrices of orthogonal pieces
of the same ``C^2`` vectors):

* by class: the class means ``d_c = (1/C) sum_c' d_cc'`` (``C`` vectors; the softmax's
  invariance to a shared logit shift leaves ``C - 1`` directions in practice) and the
  cross-class deviations ``d_cc' - d_c`` (``C(C - 1)`` vectors):
  ``G_means = C sum_c pi_c d_c d_c^T + sum_{c,c'} pi_c (d_cc' - d_c)(d_cc' - d_c)^T``;
* the ``C^2`` vectors themselves, whose Gram matrix gives ``G_means``' nonzero eigenvalues.

The outliers of the GGN spectrum are the eigenvectors that lie in these spans: an eigenvector
``v`` of ``G`` is a *class outlier* when the class-means span holds most of it
(``||P_class v||^2 >= 0.5``), a *cross-class outlier* when the span of all ``C^2`` means does
(but not the class span), and bulk otherwise. The means are ``C^2`` Jacobian-transposed
products, computed in blocks of vectors by the model view (:mod:`inspect_kit.view.jacobian`).

>>> import torch
>>> means = torch.eye(3 * 3 + 1)[:9].reshape(3, 3, 10)   # C = 3, n = 10, scaled by sqrt(pi)
>>> parts = split_means(means)
>>> parts["class"].shape, parts["cross"].shape
(torch.Size([3, 10]), torch.Size([9, 10]))
"""

from __future__ import annotations

from typing import Any

import torch

from inspect_kit.errors import OptionError
from inspect_kit.memory import budget, human
from inspect_kit.view.core import differentiable_attention

#: cotangents per batched backward when the means are formed
BLOCK = 32


def class_means(view: Any, n_classes: int, *, memory: int | str | None = None) -> torch.Tensor:
    """The ``C x C`` means ``sqrt(pi_c) d_cc'`` as a ``(C, C, n)`` tensor (see module docstring)."""
    C = int(n_classes)
    itemsize = torch.empty(0, dtype=view.dtype).element_size()
    need = C * C * view.n * itemsize
    if need > budget(memory):
        raise OptionError(f"the {C * C} class/cross-class means of {view.n:,} parameters need "
                          f"{human(need)}, over the memory budget; restrict include= or raise "
                          "memory=")
    counts = torch.zeros(C, dtype=view.dtype)
    for b in view.batches:
        _check_targets(b.target, C)
        counts += torch.bincount(b.target.cpu(), minlength=C)[:C].to(view.dtype)
    pi = counts / counts.sum()
    out = torch.zeros(C * C, view.n, dtype=view.dtype, device=view.device)
    eye = torch.eye(C, dtype=view.dtype, device=view.device)
    with torch.enable_grad(), view.mode(), differentiable_attention():
        for b in view.batches:
            leaf = view.theta.detach().clone().requires_grad_(True)
            z = view.call(view.full_state(leaf), b)
            if z.dim() != 2 or z.shape[1] != C:
                raise OptionError(f"the class structure needs (N, {C}) logits; the model gives "
                                  f"{tuple(z.shape)}")
            p = torch.softmax(z.detach(), dim=-1)
            y = b.target.to(view.device)
            # U[c, c', i] = 1[y_i = c] sqrt(pi_c) / N_c * sqrt(p_ic') (e_c' - p_i)
            scale = torch.where(counts > 0, pi.sqrt() / counts.clamp(min=1), 0.0).to(view.device)
            member = (y[None, :] == torch.arange(C, device=view.device)[:, None]).to(view.dtype)
            resp = p.T.sqrt()[:, :, None] * (eye[:, None, :] - p[None, :, :])  # (c', n_b, C)
            U = (member * scale[:, None])[:, None, :, None] * resp[None]  # (c, c', n_b, C)
            U = U.reshape(C * C, *z.shape)
            for i in range(0, C * C, BLOCK):
                blk = U[i:i + BLOCK]
                g, = torch.autograd.grad(z, leaf, grad_outputs=blk if len(blk) > 1 else blk[0],
                                         retain_graph=True, is_grads_batched=len(blk) > 1)
                out[i:i + len(blk)] += g.reshape(len(blk), -1)
    return out.reshape(C, C, view.n)


def _check_targets(y: torch.Tensor | None, C: int) -> None:
    if y is None or y.is_floating_point() or y.dim() != 1:
        raise OptionError("the class structure needs one integer class label per sample")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= C):
        raise OptionError(f"class labels must lie in [0, {C}); found {int(y.min())}.."
                          f"{int(y.max())}")


def split_means(means: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"class": sqrt(C) d_c (C, n), "cross": d_cc' - d_c (C^2, n), "all": (C^2, n)}``."""
    C = means.shape[0]
    dc = means.mean(1)
    return {"class": dc * C ** 0.5, "cross": (means - dc[:, None, :]).reshape(C * C, -1),
            "all": means.reshape(C * C, -1)}


def gram_eigenvalues(rows: torch.Tensor) -> torch.Tensor:
    """Nonzero spectrum of ``rows^T rows`` (descending) from the small Gram matrix."""
    K = (rows @ rows.T).double().cpu()
    return torch.linalg.eigvalsh(0.5 * (K + K.T)).flip(0).clamp(min=0.0)


def orthonormal(rows: torch.Tensor, rtol: float = 1e-8) -> torch.Tensor:
    """An orthonormal basis (``(r, n)``) of the span of the rows, dropping null directions."""
    K = (rows @ rows.T).double()
    lam, S = torch.linalg.eigh(0.5 * (K + K.T))
    keep = lam > rtol * float(lam.max().clamp(min=1e-300))
    basis = (S[:, keep].T.to(rows.dtype) @ rows) / lam[keep].sqrt().to(rows.dtype)[:, None]
    return basis


def capture(basis: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``||P v||^2`` of every unit row ``v`` of ``vectors`` in the span of ``basis``."""
    return ((vectors @ basis.T) ** 2).sum(1)


def attribute(means: torch.Tensor, vectors: torch.Tensor) -> list[dict[str, Any]]:
    """For each unit vector: the class ``c`` and the pair ``(c, c')`` whose (normalised) mean
    it aligns with most, and that alignment ``|cos|``."""
    C = means.shape[0]
    parts = split_means(means)
    cls = parts["class"] / parts["class"].norm(dim=1, keepdim=True).clamp(min=1e-300)
    allm = parts["all"] / parts["all"].norm(dim=1, keepdim=True).clamp(min=1e-300)
    out = []
    for v in vectors:
        a = (cls @ v).abs()
        b = (allm @ v).abs()
        k = int(b.argmax())
        out.append({"class": int(a.argmax()), "class_cos": float(a.max()),
                    "pair": [k // C, k % C], "pair_cos": float(b.max())})
    return out
