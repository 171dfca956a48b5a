"""Figures of LMCResult: the right artists for the result's content, regression without error."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analyses.lmc.api import lmc  # noqa: E402
from inspect_kit import zoo  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.errors import OptionError  # noqa: E402
from inspect_kit.io import save_figure  # noqa: E402
from inspect_kit.testing import assert_untouched  # noqa: E402
from plotting.lmc import plot_curves, plot_layerwise, plot_lmc  # noqa: E402


def test_plots_show_every_path_split_and_layer(digits, tmp_path):
    a = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 16, 10), seed=1)
    res = lmc(a, b, digits, matching="weights", layerwise=True, steps=5, split="both")
    fig = plot_lmc(res)
    ax_loss, ax_err, ax_bar = fig.axes[:3]
    assert len(ax_loss.get_lines()) == 4 and len(ax_err.get_lines()) == 4  # 2 paths x 2 splits
    assert len(ax_bar.patches) == 2 * 2  # 2 layers x 2 splits
    heights = sorted(p.get_height() for p in ax_bar.patches)
    want = sorted(v for s in ("train", "test") for v in res.layerwise["barrier_mean"]["loss"][s])
    assert np.allclose(heights, want)
    save_figure(fig, tmp_path / "lmc.png")
    assert (tmp_path / "lmc.png").stat().st_size > 10_000
    assert len(plot_curves(res).axes) == 2


def test_regression_pair_has_no_error_curve():
    data = load_data("formula:product")
    a = zoo.build("mlp", sizes=(2, 8, 1), seed=0)
    b = zoo.build("mlp", sizes=(2, 8, 1), seed=1)
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, data, matching="activations", steps=5)
    assert res.error is None and res.barrier_mean["error"] is None
    fig = plot_curves(res)
    assert len(fig.axes) == 1
    with pytest.raises(OptionError, match="layerwise"):
        plot_layerwise(res)
