"""The KAN diagram draws what EdgeSamples / AttributionResult hold (curves, opacity, fits, thinning)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from inspect_kit.errors import OptionError
from inspect_kit.io import save_figure
from inspect_kit.kan.attribution import attribute
from inspect_kit.kan.sampling import sample_edges
from inspect_kit.zoo.kan import KAN
from plotting import style
from plotting.kan import diagram


def artist(ax, gid):
    return next(c for c in ax.collections if c.get_gid() == gid)


def data(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g) * 2 - 1
    return x, torch.sin(3 * x[:, :1]) + x[:, -1:] ** 2


@pytest.fixture(scope="module")
def small():
    m = KAN([2, 5, 1], seed=0)
    with torch.no_grad():
        m.layers[0].mask[3, 1] = 0.0
    d = data(200, 2)
    return m, sample_edges(m, d, n_points=41), attribute(m, d, knockout=False)


def test_small_diagram(small, tmp_path):
    m, s, a = small
    fig = diagram(s, a, fits={(0, 0, 0): "sin"}, relative=False)
    ax = fig.axes[0]
    curves = artist(ax, "curves")
    assert len(curves.get_segments()) == s.n_edges  # one curve glyph per edge
    assert any(t.get_text() == "sin" for t in ax.texts)
    # glyph opacity follows tanh(3 * score) (floored at 0.1 so a curve never vanishes)
    want = sorted(max(float(np.tanh(3 * v)), 0.1) for l, sc in enumerate(a.edge_scores)
                  for (j, i), v in np.ndenumerate(sc) if not bool(s.masked[s.row(l, j, i)]))
    got = sorted(c[3] for c in curves.get_colors() if matplotlib.colors.to_hex(c) != "#9a9a9a")
    assert np.allclose(got, want, atol=1e-6)
    # each glyph is one edge's sampled curve rescaled into its frame
    def unit(v):
        v = np.asarray(v, dtype=float)
        return (v - v.min()) / np.ptp(v) if np.ptp(v) > 1e-12 else None

    sampled = [unit(y) for y in s.y.numpy()]
    for seg in curves.get_segments():
        g = unit(seg[:, 1])
        assert g is None or any(c is not None and np.allclose(g, c, atol=1e-6) for c in sampled)
    save_figure(fig, tmp_path / "kan.svg")
    assert "<svg" in (tmp_path / "kan.svg").read_text()[:400]
    style.close(fig)


def test_large_diagram_is_thinned(digits):
    m = KAN([64, 16, 10], seed=0)
    s = sample_edges(m, digits, n_points=21, samples=200)
    a = attribute(m, digits, samples=200, knockout=False)
    fig = diagram(s, a, max_curves=30, max_lines=100)
    ax = fig.axes[0]
    assert len(artist(ax, "curves").get_segments()) == 60
    assert "top 30 of 1024" in ax.get_title() and "next 100 as lines" in ax.get_title()
    assert len(artist(ax, "edges").get_segments()) <= 60 * 2 + 200
    style.close(fig)


def test_mult_nodes_drawn(tmp_path):
    kan = pytest.importorskip("kan")
    pk = kan.MultKAN(width=[2, [1, 1], 1], grid=3, k=3, seed=0, auto_save=False, ckpt_path=str(tmp_path))
    s = sample_edges(pk, data(100, 2))
    fig = diagram(s)
    assert any(t.get_text() == "×" for t in fig.axes[0].texts)
    assert len(artist(fig.axes[0], "curves").get_segments()) == s.n_edges == 2 * 3 + 2
    style.close(fig)


def test_bad_inputs(small):
    m, s, a = small
    with pytest.raises(OptionError, match="EdgeSamples"):
        diagram(m)
    with pytest.raises(OptionError, match="shapes"):
        diagram(s, [np.zeros((2, 2))])


def test_activation_samples_have_no_diagram():
    from inspect_kit.kan.activations import sample_activations

    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.PReLU(), torch.nn.Linear(3, 1))
    s = sample_activations(m, data(30, 2))
    with pytest.raises(OptionError, match="no network"):
        diagram(s)
