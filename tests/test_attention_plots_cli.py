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


# ------------------------------------------------------------ sequences and windows: drawn data

@pytest.fixture(scope="module")
def text_result():
    pytest.importorskip("transformers")
    from tests.test_attention_hf import gpt2, text_batch

    ids, mask = text_batch()
    return attention(gpt2("eager"), {"input_ids": ids, "attention_mask": mask}, index=1)


def _bar_heights(ax):
    return np.array([p.get_height() for p in ax.patches])


def test_sequence_heads_are_bars_and_a_token_matrix(text_result):
    res = text_result
    fig = pa.plot_heads(res)
    axes = np.array(fig.axes[:len(res.layers) * 5]).reshape(len(res.layers), 5)
    for i, lay in enumerate(res.layers):
        heat = axes[i, 0].get_images()[0].get_array()
        want = lay.matrix.copy()
        want[5:, :] = np.nan  # input 1 has 5 real tokens: padding rows and columns blank
        want[:, 5:] = np.nan
        np.testing.assert_allclose(np.ma.filled(heat, np.nan), want, atol=1e-12)
        for h in range(4):
            assert not axes[i, h + 1].get_images()  # no invented image
            np.testing.assert_allclose(_bar_heights(axes[i, h + 1]), lay.query_attention[h],
                                       atol=1e-12)
    colours = {tuple(p.get_facecolor()[:3]) for p in axes[0, 1].patches[5:]}
    assert colours == {(0.8, 0.8, 0.8)}  # padding bars grey
    assert "query token 4" in fig._suptitle.get_text()
    style.close(fig)


def test_sequence_rollout_bars_and_summary(text_result, tmp_path):
    res = text_result
    fig = pa.plot_rollout(res)
    ax = fig.axes[1]
    np.testing.assert_allclose(_bar_heights(ax), res.rollout["map"], atol=1e-12)
    assert not ax.get_images() and "into token 4" in ax.get_title()
    style.close(fig)
    fig = pa.plot_summary(res)
    heat = [a for a in fig.get_axes() if a.get_images()]
    assert len(heat) == 1  # the token x token matrix; everything else is bars and lines
    style.close(fig)
    fig = pa.plot_matrix(res)
    for ax, lay in zip(fig.axes[:len(res.layers)], res.layers):  # colour bars come last
        got = np.ma.filled(ax.get_images()[0].get_array(), np.nan)
        np.testing.assert_allclose(got[:5, :5], lay.matrix[:5, :5], atol=1e-12)
    style.close(fig)


def test_plot_matrix_needs_a_sequence(results):
    from inspect_kit.errors import OptionError

    with pytest.raises(OptionError, match="matrix"):
        pa.plot_matrix(results["softmax"])


def test_swin_window_maps_drawn_with_their_values():
    from tests.test_attention_timm import TinySwin

    torch.manual_seed(16)
    res = attention(TinySwin().eval(), (torch.randn(2, 8, 8, 16), torch.zeros(2, dtype=torch.long)))
    fig = pa.plot_heads(res)
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    for i, lay in enumerate(res.layers):
        for h in range(2):
            np.testing.assert_allclose(axes[i, h + 1].get_images()[0].get_array(),
                                       lay.window_map[h], atol=1e-12)
    style.close(fig)
    fig = pa.plot_summary(res)  # no rollout: the panel says why
    assert any("windowed" in t.get_text() for a in fig.get_axes() for t in a.texts)
    style.close(fig)


def test_cli_json_equals_the_api_and_takes_query(tmp_path):
    model = zoo.build("vit", attention="softmax", seed=6)
    ckpt = tmp_path / "vit.pt"
    save_checkpoint(model, ckpt)
    out = tmp_path / "q.json"
    assert main(["attention", str(ckpt), "--data", "digits", "--samples", "8", "--index", "2",
                 "--query", "5", "--json", str(out)]) == 0
    d = json.loads(out.read_text())["result"]
    api = attention(model, "digits", samples=8, index=2, query=5).to_dict()
    assert d["query"] == 5 and d["rollout"]["query"] == [5] * 8
    for key in ("layers", "rollout", "kind", "grid", "prefix_tokens", "seq_len"):
        assert d[key] == api[key]
