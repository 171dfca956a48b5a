"""Neurons over the (a, b) grid: 2-D Fourier spectrum, dominant frequency and purity.

A neuron's activation ``A(a, b)`` over all ``p^2`` inputs has 2-D coefficients
``C = F A F^T`` (:func:`.basis.transform_2d`; row index ``i`` for ``a``, column ``j`` for
``b``, index 0 the constant, ``2k-1``/``2k`` the cos/sin of frequency ``k``). Following Nanda
et al. 2023 (arXiv 2301.05217, Section 4.2 and Appendix D), the part of the neuron that lives
on frequency ``k`` is the linear terms in ``a`` and in ``b`` and the products of the two:

    T_k = {(0, c), (c, 0) : c in {2k-1, 2k}}  u  {(c, c') : c, c' in {2k-1, 2k}},
    E_k = sum_{(i, j) in T_k} C_ij^2,    Var = sum_{(i, j)} C_ij^2 - C_00^2.

The neuron's frequency is ``argmax_k E_k``; its *purity* ``max_k E_k / Var`` is the fraction of
its activation variance over the grid explained by that frequency (1 for a neuron that only
uses one frequency, about ``4 / p`` on average for noise).

>>> import math
>>> p = 11
>>> a = torch.arange(p, dtype=torch.float64)
>>> w = 2 * math.pi * 3 / p
>>> acts = (torch.cos(w * a)[:, None] + torch.cos(w * a)[None, :]).relu().unsqueeze(-1)
>>> st = neuron_stats(acts, p)
>>> int(st.frequency[0]), round(float(st.purity[0]), 3)
(3, 0.965)
"""

from __future__ import annotations

import dataclasses

import torch

from .basis import n_frequencies, transform_2d


@dataclasses.dataclass(frozen=True)
class NeuronStats:
    """Per-neuron frequency statistics (``N`` neurons, ``K`` frequencies).

    ``fractions``: ``(N, K + 1)``, ``E_k / Var`` (column 0, the constant, is 0);
    ``frequency``: ``(N,)`` the dominant ``k`` (0 for a constant, dead neuron);
    ``purity``: ``(N,)`` its fraction; ``energy``: ``(K + 1,)`` ``sum_n E_k`` over neurons;
    ``spectrum``: ``(2K+1, 2K+1)`` the mean over neurons of ``C_ij^2 / Var`` (the constant
    entry set to 0).
    """

    fractions: torch.Tensor
    frequency: torch.Tensor
    purity: torch.Tensor
    energy: torch.Tensor
    spectrum: torch.Tensor


def frequency_terms(coeffs_sq: torch.Tensor, k: int) -> torch.Tensor:
    """``E_k`` from squared 2-D coefficients ``(2K+1, 2K+1, ...)`` (sum over the set ``T_k``)."""
    c = [2 * k - 1, 2 * k]
    linear = coeffs_sq[0, c].sum(0) + coeffs_sq[c, 0].sum(0)
    return linear + coeffs_sq[c][:, c].sum((0, 1))


def neuron_stats(acts: torch.Tensor, p: int) -> NeuronStats:
    """Frequency statistics of neurons ``acts`` of shape ``(p, p, N)`` (activation of neuron
    ``n`` at input ``(a, b)``); see the module docstring."""
    acts = acts.to(torch.float64)
    sq = transform_2d(acts, p).pow(2)                      # (2K+1, 2K+1, N)
    var = sq.sum((0, 1)) - sq[0, 0]                        # (N,)
    K = n_frequencies(p)
    energy = torch.stack([torch.zeros_like(var)] + [frequency_terms(sq, k)
                                                     for k in range(1, K + 1)], 1)  # (N, K+1)
    safe = torch.where(var > 0, var, torch.ones_like(var))
    fractions = torch.where(var[:, None] > 0, energy / safe[:, None], torch.zeros_like(energy))
    purity, frequency = fractions[:, 1:].max(1)
    normalised = sq / safe
    normalised[0, 0] = 0.0
    frequency = torch.where(var > 0, frequency + 1, torch.zeros_like(frequency))  # dead: 0
    return NeuronStats(fractions=fractions, frequency=frequency, purity=purity,
                       energy=energy.sum(0), spectrum=normalised.mean(-1))
