"""Data-parallel Hessian-vector products over ``torch.distributed`` ranks.

Each rank holds the same model and a contiguous shard ``S_r`` of the data (``N_r`` samples, see
:func:`inspect_kit.distributed.shard`) and builds an ordinary
:class:`~.operator.HessianOperator` on it, whose products are ``H_r v`` for the shard's mean
loss. Because the full-data loss is the sample-weighted mean of the shard losses,

    H v = sum_r (N_r / N) H_r v,

one product is the local product followed by exactly one ``all_reduce(SUM)`` of a
parameter-sized vector (a ``(k, n)`` block of probes: still one all-reduce). The reduced vector
is the same on every rank, so Lanczos, Hutch++, Hutchinson and SLQ, seeded alike, take the same
steps on every rank and give every rank the same numbers (the data-parallel scheme of
PyHessian, Yao et al. 2020, "PyHessian: Neural Networks Through the Lens of the Hessian",
Sec. 3, written on ``torch.distributed`` instead of a per-batch loop).

Single process: :func:`make_operator` returns the plain operator, so nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from inspect_kit import distributed as D

from .operator import HessianOperator


class DistributedHessianOperator:
    """``v -> H v`` for the full-data Hessian, from this rank's shard and one all-reduce.

    Same interface as :class:`HessianOperator` (``matvec``, ``n``, ``dtype``, ``device``,
    ``names``, ``restrict``, ``slices``, ``hvp_count``, ...; anything not defined here is read
    from the local operator). ``n_samples`` is the total over ranks, ``n_local`` this rank's.
    """

    def __init__(self, local: HessianOperator, n_local: int, n_total: int) -> None:
        self.local = local
        self.n_local, self.n_samples = int(n_local), int(n_total)
        self.all_reduces = 0

    @classmethod
    def build(cls, model: nn.Module, data: Any, *, batch_size: int | None = None,
              **kw: Any) -> DistributedHessianOperator:
        """Shard ``data`` for this rank and build the local operator on it (``kw`` as for
        :class:`HessianOperator`)."""
        mine, n_local, n_total = D.shard(data, batch_size=batch_size)
        return cls(HessianOperator(model, mine, **kw), n_local, n_total)

    def __getattr__(self, name: str) -> Any:  # delegate n, dtype, names, slices, ...
        if name == "local":
            raise AttributeError(name)
        return getattr(self.local, name)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``sum_r (N_r/N) H_r v`` for ``(n,)`` or ``(k, n)``: one all-reduce per call."""
        out = self.local.matvec(v)
        self.all_reduces += 1
        return D.weighted_sum(out, self.n_local, self.n_samples)

    def restrict(self, names: Iterable[str]) -> DistributedHessianOperator:
        sub = DistributedHessianOperator(self.local.restrict(names), self.n_local,
                                         self.n_samples)
        return sub

    def to_dense(self, chunk: int = 64) -> torch.Tensor:
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return torch.cat([self.matvec(eye[i:i + chunk]) for i in range(0, self.n, chunk)])


def make_operator(model: nn.Module, data: Any, *, batch_size: int | None = None,
                  **kw: Any) -> HessianOperator | DistributedHessianOperator:
    """A :class:`HessianOperator` on one process; a data-parallel one under ``torchrun``."""
    if D.is_distributed():
        return DistributedHessianOperator.build(model, data, batch_size=batch_size, **kw)
    return HessianOperator(model, data, batch_size=batch_size, **kw)
