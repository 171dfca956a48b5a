"""An orthonormal Krylov basis that grows on demand, in pages, within a memory budget.

Lanczos with full reorthogonalisation keeps every basis vector. Preallocating ``steps x n`` (the
step cap) is what made a 10^8-parameter model impossible; here the basis is a list of pages of
``PAGE`` vectors each, allocated only when needed, in the products' dtype (float32 products:
float32 basis). Operations:

* ``orthogonalize(w)``: classical Gram-Schmidt against every stored vector, twice ("twice is
  enough", Giraud et al. 2005), returning the coefficients ``Q^T w`` (summed over both passes);
* ``combine(S)``: replace the first ``l`` vectors by ``Q S`` (``S`` of shape ``(m, l)``), the
  thick restart's compression, computed in column chunks so that no second ``m x n`` copy is
  made;
* ``capacity(n, itemsize, budget)``: how many vectors fit in a byte budget.

>>> import torch
>>> B = Basis(4, torch.float64, torch.device("cpu"))
>>> B.append(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
>>> w, c = B.orthogonalize(torch.tensor([2.0, 3.0, 0, 0], dtype=torch.float64))
>>> w.tolist(), c.tolist()
([0.0, 3.0, 0.0, 0.0], [2.0])
"""

from __future__ import annotations

import torch

PAGE = 16          # vectors per allocation
CHUNK = 1 << 20    # columns per step of combine()


def capacity(n: int, itemsize: int, budget: int) -> int:
    """Vectors of length ``n`` that fit in ``budget`` bytes (whole pages)."""
    per_page = PAGE * n * itemsize
    return max(0, budget // per_page) * PAGE


class Basis:
    """``m`` orthonormal vectors of length ``n`` (see the module docstring)."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.n, self.dtype, self.device = int(n), dtype, device
        self.pages: list[torch.Tensor] = []
        self.m = 0

    @property
    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.pages)

    def _blocks(self) -> list[torch.Tensor]:
        out, left = [], self.m
        for p in self.pages:
            if left <= 0:
                break
            out.append(p[: min(PAGE, left)])
            left -= PAGE
        return out

    def vector(self, j: int) -> torch.Tensor:
        return self.pages[j // PAGE][j % PAGE]

    def append(self, v: torch.Tensor) -> None:
        if self.m == len(self.pages) * PAGE:
            self.pages.append(torch.empty(PAGE, self.n, dtype=self.dtype, device=self.device))
        self.vector(self.m).copy_(v)
        self.m += 1

    def truncate(self, m: int) -> None:
        """Keep the first ``m`` vectors and free pages beyond them."""
        self.m = int(m)
        keep = (self.m + PAGE - 1) // PAGE
        del self.pages[keep:]

    def coefficients(self, w: torch.Tensor) -> torch.Tensor:
        """``Q^T w`` (length ``m``)."""
        if self.m == 0:
            return w.new_zeros(0)
        return torch.cat([blk @ w for blk in self._blocks()])

    def subtract(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``w - Q c`` (in place on ``w``)."""
        i = 0
        for blk in self._blocks():
            k = blk.shape[0]
            w.sub_(c[i:i + k] @ blk)
            i += k
        return w

    def orthogonalize(self, w: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``w`` with its components along the basis removed, and the removed coefficients."""
        total = w.new_zeros(self.m)
        for _ in range(passes):
            if self.m == 0:
                break
            c = self.coefficients(w)
            self.subtract(w, c)
            total += c
        return w, total

    def combine(self, S: torch.Tensor) -> None:
        """Replace the basis by its first ``l`` combinations ``Q S`` (``S``: ``(m, l)``)."""
        S = S.to(self.dtype)
        m, l = S.shape
        blocks = self._blocks()
        for c0 in range(0, self.n, CHUNK):
            c1 = min(self.n, c0 + CHUNK)
            M = torch.cat([blk[:, c0:c1] for blk in blocks])  # (m, chunk)
            new = S.T @ M                                     # (l, chunk)
            for j in range(l):
                self.vector(j)[c0:c1] = new[j]
        self.truncate(l)
