"""Attention figures (one Result and side by side) and the ``inspect-kit attention`` command."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

from analyses.attention.api import attention
from inspect_kit import zoo
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import main
from inspect_kit.io import save_figure
from plotting import attention as pa
from plotting import style


@pytest.fixture(scope="module")
def results():
    soft = zoo.build("vit", attention="softmax", seed=4)
    karat = zoo.build("vit", attention="fourier_karat", seed=4)
    with torch.no_grad():
        karat.blocks[1].attn.attn_fn.coef.add_(torch.randn(4, 2, 3) * 0.5)
    return {"softmax": attention(soft, "digits", samples=8, index=2),
            "Fourier-KArAt (raw)": attention(karat, "digits", samples=8, index=2,
                                             policy="raw")}


@pytest.mark.parametrize("fn", [pa.plot_heads, pa.plot_rollout, pa.plot_distance,
                                pa.plot_spectra])
def test_plots_single_and_side_by_side(fn, results, tmp_path):
    fig = fn(results["softmax"])
    assert isinstance(fig, matplotlib.figure.Figure)
    style.close(fig)
    fig = fn(results)
    save_figure(fig, tmp_path / "f.png", dpi=50)
    assert (tmp_path / "f.png").stat().st_size > 1000
    style.close(fig)


def test_signed_attention_drawn_with_diverging_map(results):
    fig = pa.plot_heads(results)
    cmaps = [im.get_cmap().name for ax in fig.axes for im in ax.get_images()]
    # 2 results x 2 layers x (image + 4 heads); KArAt layer 1 has negative entries
    assert "RdBu_r" in cmaps and "viridis" in cmaps
    karat_last = results["Fourier-KArAt (raw)"].layers[1].cls_attention
    assert np.nanmin(karat_last) < 0
    style.close(fig)


def test_summary_figure(results):
    fig = pa.plot_summary(results["Fourier-KArAt (raw)"])
    assert len([ax for ax in fig.get_axes() if ax.get_images()]) >= 6
    style.close(fig)


def test_cli_attention_json_and_plot(tmp_path):
    model = zoo.build("vit", attention="fourier_karat", seed=5)
    ckpt = tmp_path / "vit.pt"
    save_checkpoint(model, ckpt)
    out, png = tmp_path / "a.json", tmp_path / "a.png"
    code = main(["attention", str(ckpt), "--data", "digits", "--index", "3", "--rollout",
                 "--policy", "clamp", "--samples", "16", "--json", str(out),
                 "--plot", str(png)])
    assert code == 0
    d = json.loads(out.read_text())["result"]
    assert d["index"] == 3 and d["rollout"]["policy"] == "clamp"
    assert len(d["layers"]) == 2
    for lay in d["layers"]:
        assert {"name", "shape", "entropy", "distance", "negative_mass",
                "row_sum_deviation"} <= set(lay)
    assert png.stat().st_size > 1000
    # rollout of non-softmax attention without a policy: one-line error, exit 2, no files
    out2 = tmp_path / "b.json"
    assert main(["attention", str(ckpt), "--data", "digits", "--rollout", "--json",
                 str(out2)]) == 2
    assert not out2.exists()
    # --no-rollout: the key is absent (rollout is on by default, as in the API)
    assert main(["attention", str(ckpt), "--data", "digits", "--json", str(out2),
                 "--samples", "4", "--no-rollout"]) == 0
    assert "rollout" not in json.loads(out2.read_text())["result"]
