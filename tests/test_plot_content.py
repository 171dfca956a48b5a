"""The numbers a figure shows are the Result's numbers.

Each figure is drawn from a small Result and its matplotlib artists are read back: line data
(``Line2D.get_xydata``), image arrays (``AxesImage.get_array``), bar heights (``Rectangle``
patches), scatter offsets, error-bar segments and contour levels, and compared with the
Result's fields. (A file size says nothing about whether the curve drawn is the right one.)
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torch import nn  # noqa: E402

from inspect_kit import zoo  # noqa: E402


def _lines(ax) -> list:
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]


def _find_line(ax, x, y, *, atol=1e-9):
    """The one drawn line whose data is (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    hits = [ln for ln in ax.get_lines()
            if np.shape(ln.get_xdata()) == x.shape
            and np.allclose(np.asarray(ln.get_xdata(), float), x, atol=atol)
            and np.allclose(np.asarray(ln.get_ydata(), float), y, atol=atol, equal_nan=True)]
    assert len(hits) == 1, f"{len(hits)} lines match; drawn: {[ln.get_label() for ln in ax.get_lines()]}"
    return hits[0]


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() < 1.0]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# -- hessian ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hess():
    from analyses.hessian import hessian

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(1)
    data = torch.randn(60, 5, generator=g), torch.randint(0, 3, (60,), generator=g)
    return hessian(model, data, top_k=2, which="both", density=True, density_probes=3,
                   density_steps=20, blocks="layer", trace_budget=30, progress=False)


def test_hessian_eigenvalue_plot_shows_values_and_residual_bars(hess):
    from plotting.hessian import plot_eigenvalues

    ax = plot_eigenvalues(hess).axes[0]
    conv = np.asarray(hess.converged, bool)
    assert conv.all()
    (pts,) = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]  # caps are "_" markers
    np.testing.assert_array_equal(pts.get_xdata(), np.arange(1, 5))
    np.testing.assert_array_equal(pts.get_ydata(), hess.eigenvalues)
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segs = np.asarray(bars.get_segments())  # (4, 2, 2): vertical bars value -+ residual
    assert segs.shape == (4, 2, 2)
    np.testing.assert_allclose(segs[:, 0, 1], hess.eigenvalues - hess.residuals)
    np.testing.assert_allclose(segs[:, 1, 1], hess.eigenvalues + hess.residuals)


def test_hessian_density_plot_draws_the_result_grid(hess):
    from plotting.hessian import plot_density, plot_log_density

    d = hess.density
    exact = np.linspace(-0.1, 0.5, 40)
    ax = plot_density(hess, exact=exact).axes[0]
    _find_line(ax, d["grid"], d["values"])
    hist = _bars(ax)
    assert len(hist) == 79  # 80 bin edges over the grid's range
    widths = np.array([p.get_width() for p in hist])
    heights = np.array([p.get_height() for p in hist])
    assert (heights * widths).sum() == pytest.approx(1.0)  # the exact spectrum, normalised
    assert hist[0].get_x() == pytest.approx(d["grid"][0])
    ax = plot_log_density(hess).axes[0]
    _find_line(ax, d["log_grid"], d["log_values_positive"])
    _find_line(ax, d["log_grid"], d["log_values_negative"])


def test_hessian_block_plot_bars_are_the_block_numbers(hess):
    from plotting.hessian import plot_blocks

    fig = plot_blocks(hess)
    traces, extremes = fig.axes[:2]
    blocks = hess.blocks
    np.testing.assert_allclose([p.get_height() for p in _bars(traces)],
                               [b["trace"] for b in blocks])
    hi_lo = [p.get_height() for p in _bars(extremes)]
    np.testing.assert_allclose(hi_lo[:len(blocks)], [max(b["eigenvalues"]) for b in blocks])
    np.testing.assert_allclose(hi_lo[len(blocks):], [min(b["eigenvalues"]) for b in blocks])
    levels = sorted(ln.get_ydata()[0] for ln in extremes.get_lines())
    np.testing.assert_allclose(levels, [hess.lambda_min, hess.lambda_max])


# -- lmc ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lmc_result(digits):
    from analyses.lmc.api import lmc

    a = zoo.build("mlp", sizes=(64, 8, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 8, 10), seed=1)
    return lmc(a, b, digits, matching="weights", layerwise=True, steps=5, refine=False,
               split="both", samples=120, progress=False)


def test_lmc_curves_are_the_result_curves(lmc_result):
    from plotting.lmc import plot_lmc

    r = lmc_result
    fig = plot_lmc(r)
    ax_loss, ax_err, ax_bars = fig.axes[:3]
    assert len(_lines(ax_loss)) == len(_lines(ax_err)) == 4  # 2 paths x 2 splits
    for path, c in r.curves.items():
        for split in ("train", "test"):
            line = _find_line(ax_loss, c["t"], c["loss"][split])
            assert f"{c['barrier_mean']['loss'][split]:.3g}" in line.get_label()
            assert path in line.get_label() and split in line.get_label()
            _find_line(ax_err, c["t"], 100 * np.asarray(c["error"][split]))
    # the bars: one per layer and split, heights = the layer-wise loss barriers
    lw = r.layerwise
    heights = [p.get_height() for p in _bars(ax_bars)]
    want = [v for s in ("train", "test") for v in lw["barrier_mean"]["loss"][s]]
    assert len(heights) == len(want) == 2 * len(lw["names"])
    np.testing.assert_allclose(heights, want)


# -- landscape ----------------------------------------------------------------------------------


def test_landscape_line_plot_shows_loss_accuracy_and_centre(digits):
    from analyses.landscape.api import landscape
    from plotting.landscape import plot_line

    m = zoo.build("mlp", sizes=(64, 8, 10), seed=0)
    res = landscape(m, (digits.x_train[:80], digits.y_train[:80]), dims=1, steps=7,
                    progress=False)
    fig = plot_line(res)
    ax, ax2 = fig.axes[:2]
    _find_line(ax, res.axes[0], res.loss)
    centre = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1]
    assert len(centre) == 1 and centre[0].get_ydata()[0] == res.center_loss
    _find_line(ax2, res.axes[0], 100 * res.accuracy)


def test_landscape_contour_levels_and_path_are_the_result(digits):
    from analyses.landscape.api import landscape
    from plotting.landscape import plot_contour

    m = zoo.build("mlp", sizes=(64, 6, 10), seed=0)
    g = torch.Generator().manual_seed(0)
    traj = []
    for k in range(4):  # a made-up optimiser path ending at the model
        sd = {n: t + (3 - k) * 0.05 * torch.randn(t.shape, generator=g)
              for n, t in m.state_dict().items()}
        traj.append(sd)
    res = landscape(m, (digits.x_train[:60], digits.y_train[:60]), dims=2, steps=5,
                    trajectory=traj, progress=False)
    ax = plot_contour(res).axes[0]
    filled = [c for c in ax.collections if hasattr(c, "levels") and c.filled]
    assert len(filled) == 1
    lv = np.asarray(filled[0].levels)
    assert lv[0] == pytest.approx(np.nanmin(res.loss)) and lv[-1] == pytest.approx(
        np.nanmax(res.loss))
    coords = np.asarray(res.path["coords"])
    assert coords.shape == (4, 2)
    _find_line(ax, coords[:, 0], coords[:, 1])
    start = [ln for ln in ax.get_lines() if ln.get_label() == "start"]
    assert np.allclose(start[0].get_xydata()[0], coords[0])


# -- esd ----------------------------------------------------------------------------------------


def test_esd_alpha_bars_and_power_law_line():
    from analyses.esd import esd
    from plotting.esd import plot_alphas, plot_esd

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(40, 80), nn.ReLU(), nn.Linear(80, 60), nn.ReLU(),
                        nn.Linear(60, 30))
    res = esd(net, progress=False, n_boot=20)
    ax = plot_alphas(res).axes[0]
    rows = [r for r in res.layers if r["status"] != "skipped"]
    np.testing.assert_allclose([p.get_height() for p in _bars(ax)], [r["alpha"] for r in rows])
    row = res.row("2.weight")
    ax = plot_esd(res, "2.weight").axes[0]
    (pl,) = [ln for ln in ax.get_lines() if "power law" in str(ln.get_label())]
    x, y = (np.asarray(v, float) for v in (pl.get_xdata(), pl.get_ydata()))
    assert x[0] == pytest.approx(row["xmin"]) and x[-1] == pytest.approx(max(res.evals("2.weight")))
    slope = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert slope == pytest.approx(-row["alpha_raw"], rel=1e-9)  # p(lambda) ~ lambda^-alpha
    vlines = {round(float(ln.get_xdata()[0]), 12) for ln in ax.get_lines()
              if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]}
    assert round(float(row["xmin"]), 12) in vlines and round(float(row["bulk_max"]), 12) in vlines


# -- attention ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def att(digits):
    from analyses.attention.api import attention

    model = zoo.build("vit", dim=16, depth=2, heads=2, seed=0)
    return attention(model, (digits.x_train[:6], digits.y_train[:6]), index=2, samples=None,
                     progress=False)


def test_attention_head_maps_and_rollout_images_are_the_result_arrays(att):
    from plotting.attention import plot_heads, plot_rollout

    fig = plot_heads(att)
    images = [im for ax in fig.axes for im in ax.get_images()]
    maps = [im.get_array() for im in images if im.get_array().shape == (4, 4)]
    want = [lay.query_attention[h] for lay in att.layers for h in range(lay.heads)]
    assert len(maps) == len(want) == 4
    for got, w in zip(maps, want):
        np.testing.assert_allclose(np.asarray(got), w)
    fig = plot_rollout(att)
    arrays = [np.asarray(im.get_array()) for ax in fig.axes for im in ax.get_images()
              if isinstance(im, AxesImage) and im.get_array().shape == (4, 4)]
    np.testing.assert_allclose(arrays[0], att.rollout["map"])
    np.testing.assert_allclose(arrays[1], att.rollout["mean_map"])
    np.testing.assert_allclose(arrays[2], att.layers[-1].query_attention.mean(0))


def test_attention_statistics_plots_show_per_head_values(att):
    from plotting.attention import plot_distance, plot_spectra

    fig = plot_distance(att)
    for ax, field in zip(fig.axes[:3], ("distance", "entropy", "negative_mass")):
        dots = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(dots) == len(att.layers)
        for i, (c, lay) in enumerate(zip(dots, att.layers)):
            off = np.asarray(c.get_offsets())
            assert off.shape == (lay.heads, 2)
            np.testing.assert_allclose(off[:, 0], i)
            np.testing.assert_allclose(off[:, 1], getattr(lay, field))
        means = [float(np.mean(getattr(lay, field))) for lay in att.layers]
        _find_line(ax, np.arange(len(att.layers)), means)
    ax = plot_spectra(att).axes[0]
    last = att.layers[-1]
    for h in range(last.heads):
        k = np.arange(1, last.spectrum.shape[-1] + 1)
        _find_line(ax, k, last.spectrum[1][h])
        _find_line(ax, k, last.score_spectrum[1][h])
