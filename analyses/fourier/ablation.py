"""Restricted and excluded logits: the progress measures of Nanda et al. 2023.

A grokked network computes logits ``L(a, b, c)`` that are close to a sum of
``cos(w_k (a + b - c))`` over its key frequencies (arXiv 2301.05217, Section 4). As functions of
the input ``(a, b)``, those terms span the directions ``cos(w_k (a + b))`` and
``sin(w_k (a + b))``. With the unit vectors over the ``p^2`` grid

    u_k(a, b) = cos(w_k (a + b)) / |cos(w_k (a + b))|,   v_k likewise with sin

(orthogonal to each other, across frequencies and to the constant), and ``P_k`` the projection
of every output's logit grid onto ``span(u_k, v_k)``, the paper's two measures are (Section 5.1)

    restricted logits  L_res = mean_{a,b} L + sum_{k in key} P_k L   (everything else ablated)
    excluded logits    L_exc = L - sum_{k in key} P_k L              (the key frequencies ablated)

and the restricted / excluded loss is the cross-entropy of these logits on a split. The
restricted loss falls (to below the full loss) as the Fourier circuit forms; the excluded loss
rises as memorisation is cleaned up. The paper projects the MLP activations and maps them through
the (linear) output layers; projecting the logits themselves is the same thing, because the
projection acts on the input axis and the output map on the neuron axis (the output bias is
constant over the grid).

>>> import math
>>> p = 7
>>> a = torch.arange(p, dtype=torch.float64)
>>> c = torch.arange(p, dtype=torch.float64)
>>> logits = 4 * torch.cos(2 * math.pi * 2 * (a[:, None, None] + a[None, :, None] - c) / p)
>>> bool(torch.allclose(restricted_logits(logits, [2]), logits))
True
>>> float(excluded_logits(logits, [2]).abs().max()) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def sum_directions(p: int, k: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The unit vectors ``u_k``, ``v_k`` over the grid as a ``(2, p, p)`` tensor (a zero vector
    where the sine vanishes, at the Nyquist frequency of an even ``p``)."""
    a = torch.arange(p, dtype=dtype)
    angle = 2 * math.pi * k * (a[:, None] + a[None, :]) / p
    out = torch.stack([torch.cos(angle), torch.sin(angle)])
    norms = out.flatten(1).norm(dim=1)
    scale = torch.where(norms > 1e-9 * p, 1.0 / torch.clamp(norms, min=1e-300),
                        torch.zeros_like(norms))
    return out * scale[:, None, None]


def key_component(logits: torch.Tensor, key: Sequence[int]) -> torch.Tensor:
    """``sum_{k in key} P_k L`` for logits ``L`` of shape ``(p, p, V)``."""
    p = logits.shape[0]
    out = torch.zeros_like(logits)
    for k in key:
        dirs = sum_directions(p, int(k), logits.dtype).to(logits.device)   # (2, p, p)
        coef = torch.einsum("sab,abv->sv", dirs, logits)                   # (2, V)
        out = out + torch.einsum("sab,sv->abv", dirs, coef)
    return out


def restricted_logits(logits: torch.Tensor, key: Sequence[int]) -> torch.Tensor:
    """``mean_{a,b} L + sum_{k in key} P_k L``: only the key frequencies (and the constant)."""
    return logits.mean((0, 1), keepdim=True) + key_component(logits, key)


def excluded_logits(logits: torch.Tensor, key: Sequence[int]) -> torch.Tensor:
    """``L - sum_{k in key} P_k L``: the key frequencies' ``(a + b)`` directions removed."""
    return logits - key_component(logits, key)


def sum_energy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of the logits' variance over the grid (summed over outputs) in each frequency's
    ``(a + b)`` directions: ``(K + 1,)`` with index 0 set to 0 (the constant)."""
    p = logits.shape[0]
    centred = logits - logits.mean((0, 1), keepdim=True)
    total = float(centred.pow(2).sum())
    out = torch.zeros(p // 2 + 1, dtype=torch.float64)
    if total <= 0:
        return out
    for k in range(1, p // 2 + 1):
        dirs = sum_directions(p, k, logits.dtype).to(logits.device)
        out[k] = float(torch.einsum("sab,abv->sv", dirs, logits).pow(2).sum()) / total
    return out


def split_metrics(grid_logits: torch.Tensor, pairs: torch.Tensor, target: torch.Tensor
                  ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``(p, p, V)`` grid logits at the ``(N, 2)`` pairs."""
    out = grid_logits[pairs[:, 0], pairs[:, 1]]
    loss = float(F.cross_entropy(out, target.to(out.device)))
    acc = float((out.argmax(-1) == target.to(out.device)).double().mean())
    return loss, acc
