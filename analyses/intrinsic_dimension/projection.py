"""Random projections ``z (d) -> P z (D)`` from a ``d``-dimensional subspace into parameter space.

Li, Farkhoor, Liu & Yosinski 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes",
ICLR, Sec. 2 and S8) train ``theta = theta_0 + P z`` with a random ``P`` whose columns are
(nearly) orthonormal. Two constructions:

* :class:`DenseProjection`: ``P`` with i.i.d. standard normal entries, each column scaled to
  unit length. Memory ``D d``: only for small models or small ``d``.
* :class:`FastfoodProjection`: the Fastfood transform (Le, Sarlos & Smola 2013, "Fastfood:
  approximating kernel expansions in loglinear time"), as Li et al. use it:

      P z = s * (H G Pi H B [z; 0])[:D],    s = 1 / sqrt(D sum_i G_i^2),

  with ``L = 2^ceil(log2 D)``, ``[z; 0]`` zero-padded to ``L``, ``B`` a diagonal of random
  signs, ``H`` the Walsh-Hadamard matrix (:func:`.hadamard.fwht`), ``Pi`` a random permutation
  and ``G`` a diagonal of standard normals (Le et al.'s extra scaling ``S``, for kernel
  approximation, is left out as in Li et al.). ``O(L)`` memory and ``O(L log L)`` time per
  product. Before truncation every column of ``M = H G Pi H B`` has squared norm
  ``L sum G_i^2`` exactly, and ``M^T M = B H Pi^T G^2 Pi H B``, so the columns are orthogonal up
  to the spread of ``G^2``; keeping ``D`` of the ``L`` rows leaves an expected squared column
  norm of ``D sum G_i^2``, which ``s`` turns into 1.

Both draw everything from ``torch.Generator().manual_seed(seed)``.

>>> import torch
>>> P = FastfoodProjection(D=1000, d=10, seed=0)
>>> P(torch.zeros(10)).shape, P.L, P.bytes < 1000 * 10 * 4
(torch.Size([1000]), 1024, True)
"""

from __future__ import annotations

import math

import torch

from inspect_kit.errors import OptionError

from .hadamard import fwht

PROJECTIONS = ("fastfood", "dense")


def _check(D: int, d: int) -> None:
    if not 1 <= d <= D:
        raise OptionError(f"the subspace dimension d must be in [1, D={D}], got {d}")


class DenseProjection:
    """``P z`` with a dense Gaussian ``P (D x d)``, unit-norm columns."""

    def __init__(self, D: int, d: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        _check(D, d)
        self.D, self.d = D, d
        g = torch.Generator().manual_seed(int(seed))
        P = torch.randn(D, d, generator=g, dtype=torch.float64)
        self.P = (P / P.norm(dim=0, keepdim=True)).to(device, dtype)
        self.bytes = D * d * self.P.element_size()

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``P z`` for ``z`` of shape ``(..., d)`` -> ``(..., D)``."""
        return z @ self.P.T


class FastfoodProjection:
    """``P z`` by the Fastfood transform in ``O(D)`` memory (module docstring)."""

    def __init__(self, D: int, d: int, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        _check(D, d)
        self.D, self.d = D, d
        self.L = 2 ** math.ceil(math.log2(max(D, 2)))
        g = torch.Generator().manual_seed(int(seed))
        self.B = (torch.randint(0, 2, (self.L,), generator=g) * 2 - 1).to(device, dtype)
        self.Pi = torch.randperm(self.L, generator=g).to(device)
        G = torch.randn(self.L, generator=g, dtype=torch.float64)
        self.G = G.to(device, dtype)
        self.scale = float(1.0 / math.sqrt(D * float((G * G).sum())))
        self.bytes = 3 * self.L * torch.empty(0, dtype=dtype).element_size() + self.L * 8

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``P z`` for ``z`` of shape ``(..., d)`` -> ``(..., D)``."""
        x = torch.cat([z, z.new_zeros(*z.shape[:-1], self.L - self.d)], dim=-1) * self.B
        x = fwht(x)[..., self.Pi] * self.G
        return fwht(x)[..., : self.D] * self.scale


def make_projection(kind: str, D: int, d: int, *, seed: int, dtype: torch.dtype,
                    device: torch.device | str) -> DenseProjection | FastfoodProjection:
    """The projection named ``kind`` ("fastfood" or "dense")."""
    if kind == "dense":
        return DenseProjection(D, d, seed=seed, dtype=dtype, device=device)
    if kind == "fastfood":
        return FastfoodProjection(D, d, seed=seed, dtype=dtype, device=device)
    raise OptionError(f"projection must be one of {PROJECTIONS}, got {kind!r}")


def projection_bytes(kind: str, D: int, d: int, itemsize: int) -> int:
    """Memory of the projection (before it is built)."""
    if kind == "dense":
        return D * d * itemsize
    return 4 * 2 ** math.ceil(math.log2(max(D, 2))) * max(itemsize, 8)
