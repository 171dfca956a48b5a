"""An orthonormal Krylov basis that grows on demand, in pages, within a memory budget.

Lanczos with full reorthogonalisation keeps every basis vector. Preallocating ``steps x n`` (the
step cap) is what made a 10^8-parameter model impossible; here the basis is a list of pages of
``PAGE`` vectors each, allocated only when needed, in the products' dtype (float32 products:
float32 basis). Operations:

* ``orthogonalize(w)``: classical Gram-Schmidt against every stored vector, twice ("twice is
  enough", Giraud et al. 2005), returning the coefficients ``Q^T w`` (summed over both passes);
  the first pass's subtraction and the second pass's projection share one sweep over the basis
  (three reads of it per step instead of four); the coefficients are accumulated in float64
  (:mod:`.reductions`: float32 inner products over 10^8 entries are off by 1e-3);
* ``combine(S)``: replace the first ``l`` vectors by ``Q S`` (``S`` of shape ``(m, l)``), the
  thick restart's compression, computed in column chunks so that no second ``m x n`` copy is
  made;
* ``capacity(n, itemsize, budget)``: how many vectors fit in a byte budget.

Pages hold ``PAGE`` vectors except the last one under a ``limit``: a basis capped at ``limit``
vectors never allocates beyond it (at 10^8 parameters one vector is 0.4 GB, so rounding the cap
to whole pages of 16 would waste or refuse gigabytes).

>>> import torch
>>> B = Basis(4, torch.float64, torch.device("cpu"))
>>> B.append(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
>>> w, c = B.orthogonalize(torch.tensor([2.0, 3.0, 0, 0], dtype=torch.float64))
>>> w.tolist(), c.tolist()
([0.0, 3.0, 0.0, 0.0], [2.0])
"""

from __future__ import annotations

import torch

from .reductions import CHUNK as CHUNK_DOT
from .reductions import project, rows_dot

PAGE = 16          # vectors per allocation
CHUNK = 1 << 20    # columns per step of combine()
SWEEP_BYTES = 1 << 21  # basis bytes per column chunk of a fused Gram-Schmidt sweep (cache-sized)


def capacity(n: int, itemsize: int, budget: int) -> int:
    """Vectors of length ``n`` that fit in ``budget`` bytes.

    >>> capacity(10**8, 4, 5 * 10**9)
    12
    """
    return max(0, int(budget) // max(1, n * itemsize))


class Basis:
    """``m`` orthonormal vectors of length ``n`` (see the module docstring); at most ``limit``
    vectors are ever allocated (None: no cap)."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device,
                 limit: int | None = None) -> None:
        self.n, self.dtype, self.device = int(n), dtype, device
        self.limit = None if limit is None else int(limit)
        self.pages: list[torch.Tensor] = []
        self.m = 0

    @property
    def allocated(self) -> int:
        """Vectors the pages can hold."""
        return sum(p.shape[0] for p in self.pages)

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
        if self.m == self.allocated:
            rows = PAGE if self.limit is None else min(PAGE, self.limit - self.m)
            if rows <= 0:
                raise RuntimeError(f"the basis is full ({self.limit} vectors)")
            self.pages.append(torch.empty(rows, self.n, dtype=self.dtype, device=self.device))
        self.vector(self.m).copy_(v)
        self.m += 1

    def truncate(self, m: int) -> None:
        """Keep the first ``m`` vectors and free pages beyond them."""
        self.m = int(m)
        keep = (self.m + PAGE - 1) // PAGE
        del self.pages[keep:]

    def coefficients(self, w: torch.Tensor) -> torch.Tensor:
        """``Q^T w`` (length ``m``, float64: accumulated in float64, see :mod:`.reductions`)."""
        return project(self._blocks(), w)

    def subtract(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``w - Q c`` (in place on ``w``)."""
        c = c.to(w.dtype)
        i = 0
        for blk in self._blocks():
            k = blk.shape[0]
            w.addmv_(blk.T, c[i:i + k], alpha=-1)
            i += k
        return w

    def _subtract_and_project(self, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``w <- w - Q c`` (in place) and return ``Q^T w`` of the updated ``w`` (float64), in
        one sweep over column chunks small enough for the cache, so the basis is read once,
        not twice; the chunks' products are summed in float64 (:mod:`.reductions`)."""
        blocks = self._blocks()
        chunk = min(CHUNK_DOT, max(1024, SWEEP_BYTES // max(1, self.m * w.element_size())))
        c = c.to(w.dtype)
        out = torch.zeros(self.m, dtype=torch.float64, device=w.device)
        for a in range(0, self.n, chunk):
            wc = w[a:a + chunk]
            i = 0
            for blk in blocks:
                k = blk.shape[0]
                wc.addmv_(blk[:, a:a + chunk].T, c[i:i + k], alpha=-1)
                i += k
            i = 0
            for blk in blocks:
                k = blk.shape[0]
                out[i:i + k] += rows_dot(blk[:, a:a + chunk], wc)
                i += k
        return out

    def orthogonalize(self, w: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """``w`` with its components along the basis removed, and the removed coefficients
        (float64).

        Classical Gram-Schmidt repeated ``passes`` times; the subtraction of one pass and the
        projection of the next share a sweep (``passes + 1`` reads of the basis instead of
        ``2 passes``: the reads are the cost of a step when ``n`` is large)."""
        if self.m == 0 or passes < 1:
            return w, torch.zeros(self.m, dtype=torch.float64, device=w.device)
        c = self.coefficients(w)
        total = c.clone()
        for _ in range(passes - 1):
            c = self._subtract_and_project(w, c)
            total += c
        self.subtract(w, c)
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
