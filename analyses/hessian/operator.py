"""The Hessian of a model's loss as a linear operator (Hessian-vector products, "HVPs").

For parameters ``theta`` (a chosen subset of the model's trainable parameters) and data split in
batches ``b`` of ``n_b`` samples (``N = sum_b n_b``), the operator is the Hessian of the full-data
mean loss

    H = sum_b (n_b / N) * d^2/dtheta^2 L_b(theta),      L_b = mean loss on batch b,

so it does not depend on how the data is batched. The products are the model view's
(:meth:`inspect_kit.view.ModelView.hvp`: double backward on cached gradient graphs, a ``(k, n)``
block in one batched backward, data-parallel under ``torchrun``); this class only fixes which
parameters the operator acts on and counts the products.

Every algorithm in this package (Lanczos, Hutchinson, Hutch++, SLQ, blocks) consumes only
``op.matvec``, ``op.n``, ``op.dtype``; :meth:`HessianOperator.restrict` gives the diagonal block
of a parameter group (``H_BB``) sharing the same graphs.

>>> import torch
>>> from torch import nn
>>> model = nn.Linear(3, 1)
>>> x, y = torch.randn(20, 3), torch.randn(20, 1)
>>> op = HessianOperator(model, (x, y), dtype=torch.float64)
>>> op.n
4
>>> H = op.to_dense()                       # 2 X^T X / N for the MSE of a linear model
>>> Xb = torch.cat([x, torch.ones(20, 1)], 1).double()
>>> bool(torch.allclose(H, 2 * Xb.T @ Xb / 20))
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from inspect_kit.errors import NonFiniteError, OptionError
from inspect_kit.view import make_view

#: the curvature matrices an operator can stand for (see :mod:`inspect_kit.view.ggn`)
CURVATURES = ("hessian", "ggn", "fisher", "empirical_fisher", "hessian_minus_ggn")


class _Counter:
    """Products done, shared by an operator and its restricted blocks."""

    def __init__(self) -> None:
        self.count = 0


class HessianOperator:
    """``v -> H v`` for the loss Hessian of ``model`` on ``data`` (see the module docstring).

    Built from a model view (``view=``) or from ``(model, data)`` and the view's options
    (``loss``, ``include``, ``model_mode``, ``dtype``, ``device``, ``batch_size``, ``samples``,
    ``split``; see :class:`inspect_kit.view.ModelView`). ``curvature``: "hessian" (default),
    "ggn", "fisher" (Monte Carlo, ``mc_samples`` draws), "empirical_fisher"
    (:mod:`inspect_kit.view.ggn`) or "hessian_minus_ggn" (the network's second-order term);
    ``seed`` seeds the sample draw and the Fisher's labels.
    ``cache_graph`` keeps the
    gradient graphs between products (default: when the data has <= 8 batches); ``vectorize``
    evaluates a ``(k, n)`` stack in one batched backward (False loops over the rows).
    Parameters the loss does not use are dropped and listed in :attr:`skipped`.
    """

    def __init__(self, model: nn.Module | None = None, data: Any = None, *, view: Any = None,
                 curvature: str = "hessian", mc_samples: int = 1, seed: int = 0,
                 cache_graph: bool | None = None, vectorize: bool = True,
                 **view_options: Any) -> None:
        if curvature not in CURVATURES:
            raise OptionError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
        if view is None:
            if model is None:
                raise OptionError("HessianOperator needs (model, data) or view=")
            view = make_view(model, data, seed=seed, **view_options)
        self.view, self.curvature = view, curvature
        kinds = ("hessian", "ggn") if curvature == "hessian_minus_ggn" else (curvature,)
        for kind in kinds:  # the Hessian's products come first: they drop unused parameters
            products = view.products(kind, cache_graph=cache_graph, vectorize=vectorize,
                                     mc_samples=mc_samples, seed=seed)
            if kind == "hessian":
                first = products
        products = first if curvature == "hessian_minus_ggn" else products
        self.names = list(products.names)
        self.skipped = list(products.skipped)
        self.cache_graph = products.cache_graph
        self.model, self.model_mode = view.model, view.model_mode
        self.dtype, self.device = view.dtype, view.device
        self.loss_fn = view.loss_fn
        self.n_samples = view.n_samples
        self._counter = _Counter()
        self._set_names(self.names)

    def _set_names(self, names: list[str]) -> None:
        self.names = list(names)
        self.shapes = {n: tuple(self.view.shapes[n]) for n in self.names}
        self.sizes = {n: self.view.sizes[n] for n in self.names}
        self.n = sum(self.sizes.values())
        self.hvp_count = 0

    @property
    def total_hvp_count(self) -> int:
        """Products done by this operator and every block restricted from it."""
        return self._counter.count

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for ``v`` of shape ``(n,)``, or the rows ``H v_i`` for a stack ``(k, n)``."""
        if v.dim() not in (1, 2) or v.shape[-1] != self.n:
            raise OptionError(f"vector of shape {tuple(v.shape)}: the operator acts on "
                              f"(n,) or (k, n) with n = {self.n}")
        if self.curvature == "hessian_minus_ggn":  # the second-order term of the network
            out = (self.view.curvature_matvec(v, self.names, "hessian")
                   - self.view.curvature_matvec(v, self.names, "ggn"))
        else:
            out = self.view.curvature_matvec(v, self.names, self.curvature)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteError(
                f"a {self.curvature}-vector product is NaN or inf at the model's parameters "
                f"(split {self.view.options.get('split')!r}) although the loss is finite: the "
                "loss is not twice differentiable there (e.g. sqrt or abs at 0); try --dtype "
                "float64 or --include to leave those parameters out")
        k = 1 if v.dim() == 1 else v.shape[0]
        self.hvp_count += k
        self._counter.count += k
        return out

    def restrict(self, names: Iterable[str]) -> HessianOperator:
        """The diagonal block ``H_BB`` for the parameters ``names`` (same graphs, same data)."""
        names = list(names)
        unknown = [n for n in names if n not in self.names]
        if unknown or not names:
            raise OptionError(f"unknown or empty parameter group {unknown or names}; "
                              f"known names: {self.names}")
        sub = object.__new__(HessianOperator)
        sub.__dict__.update(self.__dict__)
        sub._set_names([n for n in self.names if n in names])
        return sub

    def slices(self) -> dict[str, slice]:
        """Position of each parameter in the flat vector."""
        out, i = {}, 0
        for n in self.names:
            out[n] = slice(i, i + self.sizes[n])
            i += self.sizes[n]
        return out

    def to_dense(self, chunk: int = 64) -> torch.Tensor:
        """The ``n x n`` matrix by ``n`` products (for checks on small models)."""
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return torch.cat([self.matvec(eye[i:i + chunk]) for i in range(0, self.n, chunk)])


class MatrixOperator:
    """A dense symmetric matrix behind the same interface (for tests and small problems).

    >>> MatrixOperator(torch.eye(3)).matvec(torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise OptionError(f"need a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.dtype, self.device = matrix.dtype, matrix.device
        self.names = ["matrix"]
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvp_count += 1 if v.dim() == 1 else v.shape[0]
        return v.to(self.dtype) @ self.matrix  # symmetric: (H v^T)^T = v H

    def restrict(self, idx: list[int]) -> MatrixOperator:
        return MatrixOperator(self.matrix[idx][:, idx])
