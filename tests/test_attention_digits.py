"""Softmax vs Fourier-KArAt zoo ViTs trained on digits: the side-by-side figure set (slow).

Set INSPECT_KIT_ATTENTION_FIGURES=DIR to keep the PNGs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from analyses.attention.api import attention
from inspect_kit.io import save_figure
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo.train import train_zoo
from plotting import attention as pa
from plotting import style


@pytest.mark.slow
def test_trained_softmax_vs_karat_figure_set(digits, tmp_path):
    out = os.environ.get("INSPECT_KIT_ATTENTION_FIGURES") or str(tmp_path)
    res, acc = {}, {}
    for att, policy in (("softmax", None), ("fourier_karat", "clamp")):
        model, tr = train_zoo("vit", digits, model_kwargs={"attention": att}, epochs=8,
                              progress=False)
        acc[att] = tr.final["test_acc"]
        with assert_untouched(model):
            res[att] = attention(model, digits, index=5, split="test", policy=policy)
        if att == "fourier_karat":
            with pytest.raises(Exception, match="policy"):
                attention(model, digits, split="test", samples=4)
            res["fourier_karat_raw"] = attention(model, digits, index=5, split="test",
                                                 policy="raw")
    assert min(acc.values()) > 0.5  # both learned something
    soft, karat = res["softmax"], res["fourier_karat"]
    for lay in soft.layers:  # softmax rows are distributions
        assert lay.negative_mass.max() == 0 and lay.row_sum_deviation.max() < 1e-5
    # KArAt as trained here: signed weights, rows not normalised
    assert max(lay.negative_mass.max() for lay in karat.layers) > 0.05
    assert max(lay.row_sum_deviation.max() for lay in karat.layers) > 0.05
    # scores before the activation have rank <= head_dim = 8 of 17
    s = soft.layers[-1].score_spectrum[1]
    assert np.all(s[:, 8:] < 1e-4 * s[:, :1])
    named = {"softmax": soft, "Fourier-KArAt (clamp)": karat}
    figs = {"heads": pa.plot_heads(named),
            "rollout": pa.plot_rollout({**named, "Fourier-KArAt (raw)":
                                        res["fourier_karat_raw"]}),
            "distance": pa.plot_distance(named), "spectra": pa.plot_spectra(named)}
    for name, fig in figs.items():
        path = os.path.join(out, f"attention_digits_{name}.png")
        save_figure(fig, path)
        style.close(fig)
        assert os.path.getsize(path) > 5000
    # softmax rollout rows are distributions: the CLS row's patch part sums to (0, 1)
    assert 0 < float(np.sum(soft.rollout["map"])) < 1
