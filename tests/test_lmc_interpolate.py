"""Interpolation curves and barriers: hand-made curves, endpoints and midpoints against plain
forward passes of independently built models, the mismatch error, the JSON keys."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analyses.lmc.api import lmc
from analyses.lmc.interpolate import barrier_linear, barrier_mean
from analyses.lmc.result import LMCResult
from inspect_kit import zoo
from inspect_kit.errors import ArchitectureMismatchError, OptionError
from inspect_kit.testing import assert_untouched


def test_barrier_formulas_on_hand_made_curves():
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    bump = np.array([1.0, 2.0, 4.0, 2.0, 3.0])
    # max 4; endpoint mean 2; chord at 0.5 is 2, at 0.25 is 1.5, at 0.75 is 2.5
    assert barrier_mean(t, bump) == pytest.approx(2.0)
    assert barrier_linear(t, bump) == pytest.approx(2.0)
    skew = np.array([1.0, 3.5, 3.0, 3.0, 3.0])  # peak next to the low endpoint
    assert barrier_mean(t, skew) == pytest.approx(3.5 - 2.0)
    assert barrier_linear(t, skew) == pytest.approx(3.5 - 1.5)
    mono = np.array([1.0, 0.8, 0.6, 0.4, 0.2])  # monotone: B_mean = |L_A - L_B| / 2, B_lin = 0
    assert barrier_mean(t, mono) == pytest.approx(0.4)
    assert barrier_linear(t, mono) == pytest.approx(0.0, abs=1e-12)
    # unsorted t (refined points appended) gives the same answer
    order = np.array([0, 4, 2, 1, 3])
    assert barrier_linear(t[order], skew[order]) == pytest.approx(2.0)


def _manual_loss(model, x, y):
    with torch.no_grad():
        out = model(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(-1) != y).double().mean())


def test_curve_matches_plain_forward_of_averaged_models(digits):
    a = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 16, 10), seed=1)
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, digits, steps=5, refine=False, split="both")
    assert np.allclose(res.t, [0, 0.25, 0.5, 0.75, 1])
    for i, t in enumerate(res.t):
        mid = copy.deepcopy(a)
        with torch.no_grad():
            for p, q in zip(mid.parameters(), b.parameters()):
                p.mul_(1 - t).add_(t * q)
        for split, (x, y) in (("train", (digits.x_train, digits.y_train)),
                              ("test", (digits.x_test, digits.y_test))):
            lo, err = _manual_loss(mid, x, y)
            assert res.loss[split][i] == pytest.approx(lo, abs=1e-5)
            assert res.error[split][i] == pytest.approx(err, abs=1e-9)


def test_refinement_adds_points_near_the_maximum(digits):
    a = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 16, 10), seed=1)
    res = lmc(a, b, (digits.x_train[:200], digits.y_train[:200]), steps=9)
    t = np.asarray(res.t)
    assert len(t) > 9 and np.all(np.diff(t) > 0)
    assert set(np.round(np.linspace(0, 1, 9), 12)) <= set(np.round(t, 12))
    peak = t[np.argmax(res.loss["data"])]
    extra = sorted(set(np.round(t, 12)) - set(np.round(np.linspace(0, 1, 9), 12)))
    assert min(abs(np.asarray(extra) - peak)) <= 1 / 16 + 1e-9


def test_mismatched_architectures_name_the_tensor(digits):
    a = zoo.build("mlp", sizes=(64, 16, 10))
    b = zoo.build("mlp", sizes=(64, 12, 10))
    with pytest.raises(ArchitectureMismatchError, match=r"layers\.0\.weight"):
        lmc(a, b, digits)
    with pytest.raises(OptionError, match="matching"):
        lmc(a, a, digits, matching="magic")


def test_json_keys_and_round_trip(digits, tmp_path):
    a = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 16, 10), seed=1)
    res = lmc(a, b, digits, matching="weights", layerwise=True, steps=5, split="both")
    d = res.to_dict()
    for key in ("t", "loss", "error", "barrier_mean", "barrier_linear", "aligned", "layerwise"):
        assert key in d
    for kind in ("barrier_mean", "barrier_linear"):
        assert set(d[kind]) == {"loss", "error"}
        assert set(d[kind]["loss"]) == {"train", "test"}
    assert "layerwise" not in lmc(a, b, digits, steps=3).to_dict()
    res.save(tmp_path / "r.json")
    back = LMCResult.load(tmp_path / "r.json")
    assert back.barrier_mean == res.barrier_mean
    assert np.allclose(back.t, res.t)
