"""The d_int90 search: the smallest subspace dimension reaching 90% of the full model.

Li et al. 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes", ICLR, Sec. 2)
define the intrinsic dimension ``d_int90`` as the smallest ``d`` at which random-subspace
training reaches 90% of the performance of the directly trained full model. Two readings of
"90% of the performance" are in use (ports disagree by 2-3x because of it); both are reported:

* ``relative`` (Li et al.'s): ``acc(d) >= 0.9 acc_full``;
* ``gap``: ``acc(d) >= acc_chance + 0.9 (acc_full - acc_chance)``, 90% of the way from chance to
  the full model, with ``acc_chance`` the accuracy of the best constant prediction (the
  frequency of the most common class in the evaluation split). It is the stricter one
  (``0.9 acc_full + 0.1 acc_chance``), so its ``d_int90`` is never smaller.

The search trains at the ``dims`` of a grid in increasing order (default powers of two up to
``D``) until both thresholds are met, then refines each threshold's bracket ``(d_lo, d_hi]``
(``d_lo`` the largest failing grid point below the first passing one) by ``refine`` bisection
steps at geometric midpoints. ``d_int90`` is the smallest tried ``d`` reaching the threshold
(the first crossing; accuracy is not monotone in ``d`` to within run-to-run noise), and the
final bracket ratio ``d_hi / d_lo`` is the search's resolution ("one search step").

>>> thresholds(0.95, 0.1)
{'relative': 0.855, 'gap': 0.865}
>>> acc = {1: 0.2, 2: 0.5, 4: 0.86, 8: 0.9}
>>> first_crossing(acc, 0.855), first_crossing(acc, 0.865), bracket(acc, 0.865)
(4, 8, (4, 8))
"""

from __future__ import annotations

import math
from collections.abc import Callable

FRACTION = 0.9


def thresholds(full: float, chance: float, fraction: float = FRACTION) -> dict[str, float]:
    """Accuracy thresholds of the two baseline definitions (module docstring)."""
    return {"relative": round(fraction * full, 12),
            "gap": round(chance + fraction * (full - chance), 12)}


def default_dims(D: int) -> list[int]:
    """Powers of two from 1 up to ``D`` (and ``D`` itself)."""
    dims = [2**k for k in range(int(math.log2(D)) + 1)]
    return dims if dims[-1] == D else [*dims, D]


def first_crossing(acc: dict[int, float], tau: float) -> int | None:
    """Smallest tried ``d`` with ``acc[d] >= tau`` (None when none does)."""
    hits = [d for d in sorted(acc) if acc[d] >= tau]
    return hits[0] if hits else None


def bracket(acc: dict[int, float], tau: float) -> tuple[int, int] | None:
    """``(d_lo, d_hi)``: the first crossing and the largest failing ``d`` below it (0 when
    the smallest tried ``d`` already passes)."""
    hi = first_crossing(acc, tau)
    if hi is None:
        return None
    below = [d for d in acc if d < hi]
    return (max(below) if below else 0, hi)


def search(run: Callable[[int], float], dims: list[int], taus: dict[str, float], *,
           refine: int = 3) -> dict[int, float]:
    """Accuracy at every tried ``d``: the grid until every threshold is met, then ``refine``
    bisection steps inside each threshold's bracket. ``run(d)`` trains and returns accuracy."""
    acc: dict[int, float] = {}
    top = max(taus.values())
    for d in sorted(set(dims)):
        acc[d] = run(d)
        if acc[d] >= top:
            break
    for tau in taus.values():
        for _ in range(int(refine)):
            br = bracket(acc, tau)
            if br is None or br[0] < 1 or br[1] - br[0] < 2:
                break
            mid = int(round(math.sqrt(br[0] * br[1])))
            mid = min(max(mid, br[0] + 1), br[1] - 1)
            if mid in acc:
                break
            acc[mid] = run(mid)
    return acc
