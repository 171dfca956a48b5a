"""Optimiser path projection (planar truth), plots (not blank), Result round trip, CLI."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

from analyses.landscape.api import landscape
from analyses.landscape.path import project_trajectory
from analyses.landscape.result import LandscapeResult
from inspect_kit import zoo
from inspect_kit.testing import assert_untouched


def _planar(T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = {"w": torch.randn(5, 4, generator=g, dtype=torch.float64),
         "b": torch.randn(5, generator=g, dtype=torch.float64)}
    u = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in c.items()}
    v = {k: torch.randn(t.shape, generator=g, dtype=torch.float64) for k, t in c.items()}
    ab = torch.randn(T, 2, generator=g, dtype=torch.float64)
    traj = [{k: c[k] + a * u[k] + b * v[k] for k in c} for a, b in ab.tolist()]
    return c, u, v, ab, traj


def test_planar_trajectory_has_zero_residual():
    c, u, v, ab, traj = _planar()
    pr = project_trajectory(traj, c, [u, v])  # non-orthogonal directions: least squares
    assert np.abs(pr["residual"]).max() < 1e-10
    assert np.allclose(pr["coords"], ab.numpy(), atol=1e-10)
    # a point off the plane: residual = its distance to the plane
    w = {k: torch.randn(t.shape, dtype=torch.float64) for k, t in c.items()}
    off = [{k: c[k] + 2.0 * w[k] for k in c}]
    pr2 = project_trajectory(off, c, [u, v])
    flat = lambda d: torch.cat([d[k].ravel() for k in c])  # noqa: E731
    D = torch.stack([flat(u), flat(v)], 1).numpy()
    x = 2.0 * flat(w).numpy()
    resid = x - D @ np.linalg.lstsq(D, x, rcond=None)[0]
    assert abs(pr2["residual"][0] - np.linalg.norm(resid)) < 1e-9


def test_pca_landscape_of_planar_path_zero_residual(digits):
    X, y = digits.x_train[:100], digits.y_train[:100]
    m = zoo.build("mlp", sizes=(64, 8, 10), seed=0)
    theta = {k: v.detach().clone() for k, v in m.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    u = {k: torch.randn(v.shape, generator=g) * (v.dim() > 1) for k, v in theta.items()}
    v2 = {k: torch.randn(t.shape, generator=g) * (t.dim() > 1) for k, t in theta.items()}
    traj = [{k: theta[k] + a * u[k] + b * v2[k] for k in theta}
            for a, b in [(1.0, 0.5), (0.7, 0.6), (0.4, 0.2), (0.2, -0.1), (0.0, 0.0)]]
    with assert_untouched(m):
        res = landscape(m, (X, y), steps=5, directions="pca", trajectory=traj, progress=False)
    assert max(res.path["residual"]) < 1e-4 * max(1.0, res.directions_info["theta_norm"])
    ev = res.directions_info["explained_variance_ratio"]
    assert abs(sum(ev) - 1) < 1e-6  # the path lies in a plane: two PCs explain everything
    assert res.path["coords"][-1] == pytest.approx([0.0, 0.0], abs=1e-5)


@pytest.fixture(scope="module")
def results(digits):
    X, y = digits.x_train[:200], digits.y_train[:200]
    m = zoo.build("mlp", sizes=(64, 16, 10), seed=0)
    traj = [{k: v + 0.1 * i * torch.randn_like(v) for k, v in m.state_dict().items()}
            for i in range(4, -1, -1)]
    r2 = landscape(m, (X, y), steps=7, directions="pca", trajectory=traj, progress=False)
    r1 = landscape(m, (X, y), dims=1, steps=9, progress=False)
    return r1, r2


def test_plots_not_blank(results, tmp_path):
    from inspect_kit.io import save_figure
    from plotting.landscape import plot_contour, plot_landscape, plot_line, plot_surface

    r1, r2 = results
    fig = plot_line(r1)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2
    fig = plot_contour(r2, log=True)
    ax = fig.axes[0]
    assert "% of variance" in ax.get_xlabel() and len(ax.collections) > 0
    assert any(line.get_label() == "optimiser path" for line in ax.lines)
    fig = plot_surface(r2)
    ax3 = [a for a in fig.axes if a.name == "3d"]
    assert len(ax3) == 1 and len(ax3[0].collections) == 1  # the surface is drawn
    fig = plot_landscape(r2)
    save_figure(fig, tmp_path / "l.png")
    assert (tmp_path / "l.png").stat().st_size > 20_000
    matplotlib.pyplot.close("all")


def test_result_roundtrip_and_keys(results, tmp_path):
    r1, r2 = results
    d = r2.to_dict()
    for key in ("axes", "loss", "accuracy", "center_loss", "directions_info"):
        assert key in d
    assert len(d["axes"]) == 2 and np.asarray(d["loss"]).shape == (7, 7)
    r2.save(tmp_path / "r.json")
    back = LandscapeResult.load(tmp_path / "r.json")
    assert np.array_equal(back.loss, r2.loss) and back.axes == r2.axes
    assert len(r1.rows()) == 9


def test_cli_landscape(tmp_path, capsys):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main

    m = zoo.build("mlp", sizes=(64, 8, 10), seed=0)
    traj = [{k: v + 0.05 * i * torch.randn_like(v) for k, v in m.state_dict().items()}
            for i in range(3, -1, -1)]
    ck = tmp_path / "m.pt"
    save_checkpoint(m, ck, trajectory=traj)
    out, fig = tmp_path / "o.json", tmp_path / "o.png"
    rc = main(["landscape", str(ck), "--data", "digits", "--steps", "5", "--directions", "pca",
               "--samples", "150", "--json", str(out), "--plot", str(fig)])
    assert rc == 0
    d = json.loads(out.read_text())["result"]
    for key in ("axes", "loss", "accuracy", "center_loss", "directions_info"):
        assert key in d
    assert d["directions_info"]["kind"] == "pca" and d["subset_check"]["subset"] == 150
    assert fig.stat().st_size > 10_000
    rc = main(["landscape", str(ck), "--data", "digits", "--steps", "4", "--json", str(out)])
    assert rc == 2  # even steps: one-line error, no traceback
