"""How far apart two kernels on the same samples are, and how a kernel lines up with the targets.

For two kernels ``A`` (the reference, e.g. at initialisation) and ``B`` in the same form (the
arrays of :mod:`.forms`; "full" is read as the ``(N O) x (N O)`` matrix, "per_output" as the
block-diagonal matrix of its ``O`` blocks, so every sum below runs over all entries),
with ``<A, B> = sum A * B`` the Frobenius inner product:

* relative Frobenius distance   ``||B - A|| / ||A||``;
* kernel alignment              ``<A, B> / (||A|| ||B||)`` (Cristianini, Shawe-Taylor,
  Elisseeff & Kandola 2002, "On kernel-target alignment"), the cosine of the angle between the
  kernels, 1 when one is a positive multiple of the other; ``1 - alignment`` is the kernel
  distance of Fort et al. 2020 ("Deep learning versus kernel learning");
* centred kernel alignment (CKA) the alignment of ``H A H`` and ``H B H`` with the centring
  ``H = I_N - 1 1^T / N`` over samples (``H (x) I_O`` for "full"): each kernel minus its means
  over rows and columns of samples (Cortes, Mohri & Rostamizadeh 2012; Kornblith et al. 2019).

The kernel-target alignment is the centred alignment of a kernel with the target kernel
``Y Y^T`` built in the same form from targets ``Y (N, O)`` (one-hot labels for classification):
``Y[i, a] Y[j, b]`` ("full"), ``sum_a Y[i, a] Y[j, a]`` ("trace"), ``Y[i, a] Y[j, a]`` per
output. It grows when the kernel's leading eigenvectors turn towards the labels during training.

>>> import torch
>>> A = torch.eye(3, dtype=torch.float64)
>>> d = kernel_change(A, 2 * A, "trace")
>>> round(d["relative_frobenius"], 6), round(d["alignment"], 6), abs(round(d["distance"], 6))
(1.0, 1.0, 0.0)
"""

from __future__ import annotations

import torch


def _sample_axes(form: str) -> tuple[int, int]:
    return (1, 2) if form == "per_output" else (0, 1)


def centred(K: torch.Tensor, form: str) -> torch.Tensor:
    """``K`` with its means over the two sample axes removed (``H K H``)."""
    r, c = _sample_axes(form)
    return K - K.mean(r, keepdim=True) - K.mean(c, keepdim=True) \
        + K.mean((r, c), keepdim=True)


def alignment(A: torch.Tensor, B: torch.Tensor) -> float:
    """``<A, B> / (||A|| ||B||)`` (NaN when either is zero)."""
    den = float(A.norm() * B.norm())
    return float((A * B).sum()) / den if den > 0 else float("nan")


def kernel_change(reference: torch.Tensor, K: torch.Tensor, form: str) -> dict[str, float]:
    """Relative Frobenius distance, alignment, distance ``1 - alignment`` and CKA of ``K``
    against ``reference`` (see the module docstring)."""
    A, B = reference.double(), K.double()
    ref = float(A.norm())
    align = alignment(A, B)
    return {"relative_frobenius": float((B - A).norm()) / ref if ref > 0 else float("nan"),
            "alignment": align, "distance": 1.0 - align,
            "cka": alignment(centred(A, form), centred(B, form))}


def target_kernel(Y: torch.Tensor, form: str) -> torch.Tensor:
    """``Y Y^T`` in ``form`` for targets ``Y (N, O)``."""
    Y = Y.double()
    if form == "full":
        return torch.einsum("ia,jb->ijab", Y, Y)
    if form == "trace":
        return Y @ Y.T
    return torch.einsum("ia,ja->aij", Y, Y)


def target_alignment(K: torch.Tensor, Y: torch.Tensor, form: str) -> float:
    """Centred alignment of ``K`` with the target kernel of ``Y``."""
    return alignment(centred(K.double(), form), centred(target_kernel(Y, form), form))
