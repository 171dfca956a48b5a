"""Guards for symbolic selection that had no test: ``rule="bic"`` against Schwarz's criterion
computed by hand, on hand-made numbers and on real fits, and the number of held-out points the
criterion is given by ``symbolic()``.

BIC (Schwarz 1978) for a fit with held-out error ``err = 1 - R^2_val`` on ``n`` points and
complexity ``cx``: ``n log(err) + cx log(n)``; the pick is its minimum over the Pareto front.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from analyses.symbolic import select
from analyses.symbolic.fit import fit_edges
from analyses.symbolic.select import choose, pick


def _bic(err: float, cx: float, n: int) -> float:
    return n * math.log(max(err, 0.0) + 1e-15) + cx * math.log(n)


def test_bic_pick_on_hand_made_numbers():
    cx = np.array([1.0, 2.0, 3.0, 5.0])
    err = np.array([0.1, 0.05, 0.049, 0.045])
    front = [0, 1, 2, 3]
    for n, want in ((100, 1), (1000, 3)):
        scores = [_bic(err[k], cx[k], n) for k in front]
        assert int(np.argmin(scores)) == want  # the hand computation, for the record
        assert pick(cx, err, front, rule="bic", n=n) == want
    # the tolerance rule picks the simplest within 3x of the best error: a different answer
    assert pick(cx, err, front, rule="tolerance") == 0
    assert pick(cx, err, [], rule="bic", n=100) is None


def test_bic_choice_on_real_fits_is_the_minimum_over_the_reported_front():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 120)
    rows = [np.sin(2.5 * x + 0.3), 0.7 * x**2 - 0.2 + 0.05 * np.sin(6 * x), np.exp(0.8 * x),
            x**3 - 0.5 * x, 1.5 * x + 0.02 * x**2, np.tanh(3 * x)]
    Y = np.array([r + 0.02 * rng.standard_normal(len(x)) for r in rows])
    xv = np.sort(rng.uniform(-1, 1, (len(rows), 60)), axis=1)
    fns = [lambda t: np.sin(2.5 * t + 0.3), lambda t: 0.7 * t**2 - 0.2 + 0.05 * np.sin(6 * t),
           lambda t: np.exp(0.8 * t), lambda t: t**3 - 0.5 * t, lambda t: 1.5 * t + 0.02 * t**2,
           lambda t: np.tanh(3 * t)]
    yv = np.array([f(t) + 0.02 * rng.standard_normal(len(t)) for f, t in zip(fns, xv)])
    table = fit_edges(np.tile(x, (len(rows), 1)), Y, ["x", "x^2", "sin", "exp", "tanh", "x^3"],
                      x_val=xv, y_val=yv, progress=False)
    n = 60
    bic = choose(table, rule="bic", n_val=n)
    tol = choose(table, rule="tolerance", n_val=n)
    assert len(bic) == len(rows)
    flipped_differs = False
    for row in bic:
        front = row["pareto"]
        assert front, row
        scores = [_bic(1.0 - f["r2_val"], f["complexity"], n) for f in front]
        assert row["function"] == front[int(np.argmin(scores))]["function"]
        rewarded = [n * math.log(max(1.0 - f["r2_val"], 0) + 1e-15) - f["complexity"] * math.log(n)
                    for f in front]
        flipped_differs |= int(np.argmin(rewarded)) != int(np.argmin(scores))
    assert flipped_differs  # the case tells a penalty from a reward
    assert [r["function"] for r in bic] != [r["function"] for r in tol]


def test_symbolic_gives_bic_the_number_of_held_out_points(monkeypatch):
    """``symbolic(rule="bic")`` scores on the edges' observed activations (``samples`` of them,
    at most 500): that count, not a fixed 100, is BIC's ``n``."""
    from analyses.symbolic.api import symbolic
    from inspect_kit import zoo

    seen: list[int] = []
    real = select.pick

    def spy(*args, **kwargs):
        seen.append(int(kwargs.get("n", -1)))
        return real(*args, **kwargs)

    monkeypatch.setattr(select, "pick", spy)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 2, generator=g) * 2 - 1
    y = x[:, :1] ** 2 + torch.sin(x[:, 1:])
    model = zoo.build("kan", width=[2, 2, 1], seed=0)
    symbolic(model, (x, y), library="x,x^2,sin", samples=120, structure=False, rule="bic",
             simplify_seconds=1.0, snap=False, prune=0.0, progress=False)
    assert seen and set(seen) == {120}
