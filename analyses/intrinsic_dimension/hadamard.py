"""The fast Walsh-Hadamard transform, ``O(L log L)`` time and ``O(L)`` memory.

The (unnormalised) Hadamard matrix of order ``L = 2^m`` in Sylvester's ordering is
``H_1 = [1]``, ``H_2L = [[H_L, H_L], [H_L, -H_L]]``; it is symmetric and ``H_L H_L = L I``.
:func:`fwht` computes ``y = H_L x`` along the last axis by ``m`` butterfly stages: at stage
``h = 1, 2, 4, ..., L/2`` every pair ``(x[i], x[i + h])`` inside each block of ``2h`` entries
becomes ``(x[i] + x[i + h], x[i] - x[i + h])`` (Fino & Algazi 1976, "Unified matrix treatment
of the fast Walsh-Hadamard transform"). Every stage is a differentiable tensor operation, so
autograd's backward of the transform is the transform itself (``H`` is symmetric).

>>> import torch
>>> fwht(torch.tensor([1.0, 0.0, 0.0, 0.0])).tolist()       # first column of H_4
[1.0, 1.0, 1.0, 1.0]
>>> x = torch.randn(3, 8, dtype=torch.float64)
>>> bool(torch.allclose(fwht(fwht(x)), 8 * x))               # H H = L I
True
"""

from __future__ import annotations

import torch

from inspect_kit.errors import OptionError


def is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def fwht(x: torch.Tensor) -> torch.Tensor:
    """``H_L x`` along the last axis (length ``L`` a power of two), unnormalised."""
    L = x.shape[-1]
    if not is_power_of_two(L):
        raise OptionError(f"the Walsh-Hadamard transform needs a power-of-two length, got {L}")
    lead = x.shape[:-1]
    y = x.reshape(-1, L)
    h = 1
    while h < L:
        y = y.view(-1, L // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return y.reshape(*lead, L)
