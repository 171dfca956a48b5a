"""The real Fourier basis of the group Z_p and transforms over it (one and two axes).

For ``x in {0, ..., p-1}``, ``K = p // 2`` frequencies and ``w_k = 2 pi k / p``, the rows of
the ``(2K + 1, p)`` matrix ``F`` are (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability", arXiv 2301.05217, Section 4)

    F_0 = 1 / sqrt(p),   F_{2k-1} = sqrt(2/p) cos(w_k x),   F_{2k} = sqrt(2/p) sin(w_k x)

for ``k = 1..K``. For odd ``p`` these ``p`` rows are an orthonormal basis of R^p; for even ``p``
the Nyquist frequency ``k = p/2`` has ``cos(pi x) / sqrt(p)`` and an all-zero sine row, so
``F^T F = I`` still holds. A vector ``f`` over Z_p has coefficients ``F f`` and energy
``|F_{2k-1} f|^2 + |F_{2k} f|^2`` at frequency ``k`` (the squared modulus of its DFT
coefficient times ``2/p``).

>>> F = fourier_basis(7)
>>> F.shape, bool(torch.allclose(F @ F.T, torch.eye(7, dtype=F.dtype)))
(torch.Size([7, 7]), True)
>>> x = torch.arange(7, dtype=torch.float64)
>>> e = frequency_energy(F @ torch.cos(2 * torch.pi * 3 * x / 7))
>>> [round(float(v), 6) for v in e]
[0.0, 0.0, 0.0, 3.5]
"""

from __future__ import annotations

import math

import torch


def n_frequencies(p: int) -> int:
    """``K = p // 2``: the non-constant frequencies ``1..K`` of Z_p."""
    return int(p) // 2


def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``(2K + 1, p)`` real Fourier basis of Z_p (rows: constant, then cos/sin per ``k``)."""
    K = n_frequencies(p)
    x = torch.arange(p, dtype=dtype)
    rows = [torch.full((p,), 1.0 / math.sqrt(p), dtype=dtype)]
    for k in range(1, K + 1):
        angle = 2 * math.pi * k * x / p
        if 2 * k == p:  # Nyquist: cos(pi x) = (-1)^x has norm sqrt(p); sin(pi x) = 0
            rows += [torch.cos(angle) / math.sqrt(p), torch.zeros(p, dtype=dtype)]
        else:
            rows += [torch.cos(angle) * math.sqrt(2.0 / p), torch.sin(angle) * math.sqrt(2.0 / p)]
    return torch.stack(rows)


def component_labels(p: int) -> list[str]:
    """Names of the rows of :func:`fourier_basis`: ``const``, ``cos 1``, ``sin 1``, ..."""
    out = ["const"]
    for k in range(1, n_frequencies(p) + 1):
        out += [f"cos {k}", f"sin {k}"]
    return out


def frequency_energy(coeffs: torch.Tensor) -> torch.Tensor:
    """Energy per frequency from coefficients along the first axis (length ``2K + 1``).

    Returns ``(K + 1, ...)``: index 0 is the constant's squared coefficient, index ``k`` the sum
    of the squared cos and sin coefficients of frequency ``k``; further axes are kept.
    """
    sq = coeffs.pow(2)
    return torch.cat([sq[:1], sq[1::2] + sq[2::2]])


def transform(values: torch.Tensor, p: int) -> torch.Tensor:
    """Coefficients ``F v`` of values indexed by Z_p along the first axis (``(p, ...)``)."""
    F = fourier_basis(p, values.dtype).to(values.device)
    return torch.tensordot(F, values, dims=([1], [0]))


def transform_2d(values: torch.Tensor, p: int) -> torch.Tensor:
    """Coefficients ``F A F^T`` over the first two axes of ``A`` (``(p, p, ...)`` -> ``(2K+1,
    2K+1, ...)``): the 2-D Fourier transform over (a, b)."""
    F = fourier_basis(p, values.dtype).to(values.device)
    once = torch.tensordot(F, values, dims=([1], [0]))            # (i, b, ...)
    return torch.tensordot(F, once, dims=([1], [1])).transpose(0, 1)  # (i, j, ...)
