"""Spectra of token-indexed matrices over Z_p and the choice of key frequencies.

An embedding ``W_E`` (``p`` token rows, ``d`` columns) has the per-frequency norm

    s_k = sqrt( |F_{2k-1} W_E|^2 + |F_{2k} W_E|^2 ),   k = 0..K   (s_0: the constant row)

(:mod:`.basis`). A grokked modular-addition network has a *sparse* spectrum: a few key
frequencies carry almost all of the non-constant energy (Nanda et al. 2023, arXiv 2301.05217,
Figure 3). :func:`key_frequencies_by_gap` reads them off any per-frequency energy ``e_1..e_K``:

    sort the energies, e_(1) >= e_(2) >= ... >= e_(K), floored at 1e-12 max_k e_k;
    n* = argmax_{1 <= n < K} e_(n) / e_(n+1)            (the first such n on ties);
    key = the frequencies of e_(1), ..., e_(n*), in increasing order.

That is the largest drop of the sorted spectrum; an unstructured (e.g. freshly initialised)
embedding has no clear drop and the rule then returns whatever is largest, so read it together
with :func:`key_share`, the fraction of the energy the key frequencies hold.

>>> e = torch.tensor([0.0, 0.1, 5.0, 0.2, 4.0, 0.1])   # index = frequency, 0 = constant
>>> key_frequencies_by_gap(e)
[2, 4]
>>> round(key_share(e, [2, 4]), 4)
0.9574
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inspect_kit.errors import OptionError

from .basis import frequency_energy, transform

#: relative floor of the energies before ratios are taken (exact zeros in synthetic spectra)
FLOOR = 1e-12


def spectrum(matrix: torch.Tensor, p: int) -> torch.Tensor:
    """Per-frequency energy ``s_k^2`` (``(K + 1,)``, index = frequency) of a ``(p, d)`` matrix
    whose rows are indexed by Z_p."""
    energy = frequency_energy(transform(matrix.to(torch.float64), p))
    return energy.reshape(len(energy), -1).sum(1)


def key_frequencies_by_gap(energy: torch.Tensor) -> list[int]:
    """Key frequencies of a per-frequency energy (index = frequency, index 0 ignored) by the
    largest ratio between consecutive sorted energies (module docstring)."""
    e = energy[1:].to(torch.float64)
    if len(e) < 2:
        return [1] if len(e) else []
    e = torch.clamp(e, min=float(e.max()) * FLOOR if float(e.max()) > 0 else 0.0)
    if float(e.max()) <= 0:
        return []
    order = torch.argsort(e, descending=True, stable=True)
    s = e[order]
    ratios = s[:-1] / torch.clamp(s[1:], min=torch.finfo(torch.float64).tiny)
    n = int(torch.argmax(ratios)) + 1  # argmax returns the first maximum
    return sorted(int(k) + 1 for k in order[:n])


def top_frequencies(energy: torch.Tensor, n: int) -> list[int]:
    """The ``n`` frequencies (1..K) of largest energy, in increasing order."""
    K = len(energy) - 1
    if not 1 <= int(n) <= K:
        raise OptionError(f"key_frequencies={n} must be between 1 and {K} (the number of "
                          "non-constant frequencies)")
    order = torch.argsort(energy[1:].to(torch.float64), descending=True, stable=True)
    return sorted(int(k) + 1 for k in order[: int(n)])


def key_share(energy: torch.Tensor, key: Sequence[int]) -> float:
    """Fraction of the non-constant energy ``sum_{k in key} e_k / sum_{k >= 1} e_k``."""
    total = float(energy[1:].sum())
    return float(energy[list(key)].sum()) / total if total > 0 and len(key) else 0.0
