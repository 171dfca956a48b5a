"""Grid evaluation against the naive loop (deepcopy, load_state_dict, forward), centre, resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.landscape.api import grid_axis, interpolation_axis, landscape
from analyses.landscape.directions import random_directions
from inspect_kit import zoo
from inspect_kit.errors import OptionError
from inspect_kit.params import named_params
from inspect_kit.testing import assert_untouched


def naive_grid(model, X, y, dirs, axes, loss="ce"):
    """Independent truth: set weights on a deep copy, forward, loss (Li et al.'s loop)."""
    net = copy.deepcopy(model).eval()
    theta = named_params(model)
    shape = tuple(len(a) for a in axes)
    L, A = np.zeros(shape), np.zeros(shape)
    for idx in np.ndindex(*shape):
        sd = net.state_dict()
        for k in theta:
            sd[k] = theta[k] + sum(float(axes[j][idx[j]]) * dirs[j][k] for j in range(len(axes)))
        net.load_state_dict(sd)
        with torch.no_grad():
            out = net(X)
        if loss == "ce":
            L[idx] = float(F.cross_entropy(out, y))
            A[idx] = float((out.argmax(-1) == y).double().mean())
        else:
            L[idx] = float(F.mse_loss(out, y))
    return L, A


@pytest.fixture(scope="module")
def small(digits):
    X, y = digits.x_train[:300], digits.y_train[:300]
    return X, y


@pytest.mark.parametrize("method", ["loop", "vmap", "auto"])
@pytest.mark.parametrize("trick", [True, False])
def test_mlp_grid_equals_naive_loop(small, method, trick):
    X, y = small
    m = zoo.build("mlp", sizes=(64, 24, 24, 10), seed=1)
    with assert_untouched(m):
        res = landscape(m, (X, y), steps=5, seed=2, engine=method, chunk=7,
                        first_layer_trick=trick, progress=False)
    dirs = random_directions(m, 2, seed=2)
    L, A = naive_grid(m, X, y, dirs, [np.asarray(a) for a in res.axes])
    assert np.allclose(res.loss, L, atol=2e-6, rtol=1e-6)
    assert np.array_equal(res.accuracy, A)
    assert res.directions_info["first_layer_trick"] is trick


def test_center_equals_model_loss_and_is_on_grid(digits):
    m = zoo.build("mlp", sizes=(64, 32, 10), seed=0)
    with assert_untouched(m):
        res = landscape(m, digits, steps=7, progress=False)
    with torch.no_grad():
        own = float(F.cross_entropy(m(digits.x_train), digits.y_train))
    assert abs(res.center_loss - own) < 1e-6
    assert res.axes[0][3] == 0.0 and res.axes[1][3] == 0.0
    assert res.loss[3, 3] == res.center_loss


@pytest.mark.parametrize("name,kwargs", [
    ("kan", {"width": [64, 4, 10], "grid": 3}),
    ("vit", {"dim": 16, "depth": 1, "heads": 2, "attention": "fourier_karat"}),
    ("vit", {"dim": 16, "depth": 1, "heads": 2}),
])
def test_zoo_models_equal_naive(digits, name, kwargs):
    X, y = digits.x_train[:64], digits.y_train[:64]
    m = zoo.build(name, **kwargs)
    with assert_untouched(m):
        res = landscape(m, (X, y), steps=3, span=0.5, progress=False)
    dirs = random_directions(m, 2, seed=0)
    L, _ = naive_grid(m, X, y, dirs, [np.asarray(a) for a in res.axes])
    assert np.allclose(res.loss, L, atol=2e-6, rtol=1e-5)


def test_batchnorm_dropout_model_keeps_buffers(small):
    X, y = small
    m = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                      nn.Linear(16, 10))
    m.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            m(X)
    with assert_untouched(m):
        res = landscape(m, (X, y), steps=3, progress=False)
        landscape(m, (X, y), dims=1, steps=3, model_mode="train", progress=False)
    assert m.training  # the caller's mode is restored
    dirs = random_directions(m, 2, seed=0)
    L, _ = naive_grid(m, X, y, dirs, [np.asarray(a) for a in res.axes])
    assert np.allclose(res.loss, L, atol=2e-6, rtol=1e-6)


def test_regression_line_mse():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 3, generator=g)
    y = torch.randn(50, 1, generator=g)
    m = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    with assert_untouched(m):
        res = landscape(m, (X, y), dims=1, steps=5, progress=False)
    assert res.accuracy is None and res.center_accuracy is None
    (d,) = random_directions(m, 1, seed=0)
    L, _ = naive_grid(m, X, y, [d], [np.asarray(res.axes[0])], loss="mse")
    assert np.allclose(res.loss, L, atol=1e-6)


def test_interpolation_line_hits_both_ends(small):
    X, y = small
    a = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 16, 10), seed=1)
    with assert_untouched(a), assert_untouched(b):
        res = landscape(a, (X, y), dims=1, steps=9, directions="interpolation", target=b,
                        progress=False)
    ax = res.axes[0]
    assert 0.0 in ax and 1.0 in ax and ax[0] < 0 and ax[-1] > 1
    with torch.no_grad():
        lb = float(F.cross_entropy(b(X), y))
    assert abs(res.loss[ax.index(1.0)] - lb) < 1e-5
    assert abs(np.diff(interpolation_axis(9, 0.5)).std()) < 1e-12


def test_subset_reports_its_error(digits):
    m = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    with assert_untouched(m):
        res = landscape(m, digits, steps=5, samples=100, subset_checks=3, progress=False)
    chk = res.subset_check
    assert chk["subset"] == 100 and res.meta["n_samples"] == 100
    assert chk["points"][0] == [0.0, 0.0] and len(chk["points"]) == 3
    dirs = random_directions(m, 2, seed=0)
    for (a, b), full, sub, err in zip(chk["points"], chk["full_loss"], chk["subset_loss"],
                                      chk["abs_error"]):
        L, _ = naive_grid(m, digits.x_train, digits.y_train, dirs,
                          [np.array([a]), np.array([b])])
        assert abs(L[0, 0] - full) < 1e-5
        assert abs(abs(sub - full) - err) < 1e-12
    # seeded: same subset, same values
    res2 = landscape(m, digits, steps=5, samples=100, subset_checks=3, progress=False)
    assert np.array_equal(res.loss, res2.loss)


def test_resume_skips_done_points(small, tmp_path):
    X, y = small
    m = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    part = tmp_path / "partial.json"
    with assert_untouched(m):
        full = landscape(m, (X, y), steps=5, resume=part, progress=False)
    saved = json.loads(part.read_text())
    saved["loss"] = [123.0] + [None] * 12 + saved["loss"][13:]
    del saved["checksum"]  # a hand-made file (a kit-written one is refused once edited)
    part.write_text(json.dumps(saved))
    with assert_untouched(m):
        again = landscape(m, (X, y), steps=5, resume=part, progress=False)
    assert again.meta["resumed_points"] == 25 - 12
    assert again.loss.ravel()[0] == 123.0  # taken from the file, not recomputed
    assert np.allclose(again.loss.ravel()[1:], full.loss.ravel()[1:], atol=1e-7)
    with pytest.raises(OptionError, match="delete it"):
        landscape(m, (X, y), steps=5, seed=9, resume=part, progress=False)


def test_bad_options(small):
    X, y = small
    m = zoo.build("mlp", sizes=(64, 16, 10))
    for kw in ({"steps": 4}, {"dims": 3}, {"directions": "up"}, {"bn": "recompute"},
               {"directions": "pca"}, {"span": -1.0}, {"samples": 0}):
        with pytest.raises(OptionError):
            landscape(m, (X, y), progress=False, **kw)


def test_grid_axis_exact_centre():
    for n in (3, 5, 25, 51):
        ax = grid_axis(n, 0.7)
        assert ax[n // 2] == 0.0 and np.array_equal(ax, -ax[::-1]) and ax[-1] == 0.7


def test_auto_engine_trials_both_and_matches_naive(small, monkeypatch):
    X, y = small
    X, y = X[:60], y[:60]
    m = zoo.build("mlp", sizes=(64, 12, 10), seed=3)
    res = landscape(m, (X, y), steps=9, chunk=5, progress=False)
    assert set(res.meta["engine_ms_per_point"]) == {"loop"}  # short grid: no vmap set-up
    monkeypatch.setattr("inspect_kit.view.points.TRIAL_MIN_MS", 0.0)
    with assert_untouched(m):
        res = landscape(m, (X, y), steps=9, chunk=5, progress=False)  # 81 >= 8 * 5 points
    assert set(res.meta["engine_ms_per_point"]) == {"loop", "vmap"}
    assert res.meta["engine"] in ("loop", "vmap")
    dirs = random_directions(m, 2, seed=0)
    L, _ = naive_grid(m, X, y, dirs, [np.asarray(a) for a in res.axes])
    assert np.allclose(res.loss, L, atol=2e-6, rtol=1e-6)


def test_test_split_centre(digits):
    m = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    with assert_untouched(m):
        res = landscape(m, digits, dims=1, steps=3, split="test", progress=False)
    with torch.no_grad():
        own = float(F.cross_entropy(m(digits.x_test), digits.y_test))
    assert abs(res.center_loss - own) < 1e-6 and res.meta["split"] == "test"
    assert res.meta["n_samples"] == len(digits.x_test)


def test_loss_only_mode(small):
    X, y = small
    m = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    with assert_untouched(m):
        a = landscape(m, (X, y), steps=3, progress=False)
        b = landscape(m, (X, y), steps=3, accuracy=False, progress=False)
    assert b.accuracy is None and np.array_equal(a.loss, b.loss)
