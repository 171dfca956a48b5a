"""ESD vs WeightWatcher 0.7.7 run side by side on the same models (small, so the test is fast).

Bars from the issue: compat mode |delta alpha| <= 1e-8 with the same xmin on every row
WeightWatcher analyses; fast mode |delta alpha| <= 0.01.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.esd import esd
from analyses.esd.ww_backend import compare_rows, run_weightwatcher, ww_rows
from inspect_kit.data import load_data
from inspect_kit.testing import assert_untouched

pytest.importorskip("weightwatcher")


@pytest.fixture(scope="module")
def trained_mlp() -> nn.Module:
    b = load_data("digits")
    x = torch.as_tensor(b.x_train, dtype=torch.float32).reshape(len(b.x_train), -1)
    y = torch.as_tensor(b.y_train).long()
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 150), nn.ReLU(),
                      nn.Linear(150, 10))
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    for _ in range(4):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(m(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return m


@pytest.fixture(scope="module")
def encoder() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 256, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    torch.manual_seed(1)
    for mod in enc.layers[1].modules():  # make the two layers differ
        if isinstance(mod, nn.Linear):
            mod.reset_parameters()
    return enc


@pytest.fixture(scope="module")
def convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.Flatten(),
                         nn.Linear(32 * 4, 20))


def _check(model: nn.Module, n_rows: int, **kw) -> None:  # noqa: ANN003
    theirs = ww_rows(run_weightwatcher(model, **kw))
    assert len(theirs) == n_rows
    with assert_untouched(model):
        compat = esd(model, method="compat", progress=False, mp_fit=kw.get("mp_fit", False))
        fast = esd(model, method="fast", progress=False, mp_fit=False)
    for c in compare_rows(compat.layers, theirs):
        assert not math.isnan(c["alpha_ours"]), c
        assert c["delta_alpha"] <= 1e-8, c
        assert c["xmin_ours"] == c["xmin_ww"], c
        assert abs(c["D_ours"] - c["D_ww"]) <= 1e-8
        assert c["num_tail_ours"] == c["num_tail_ww"]
        assert c["log_norm_ours"] == pytest.approx(c["log_norm_ww"], rel=1e-9)
        if kw.get("detX"):
            assert c["detx_num_ours"] == c["detx_num_ww"]
        if kw.get("mp_fit"):
            assert c["num_spikes_ours"] == c["num_spikes_ww"], c
            assert c["mp_softrank_ours"] == pytest.approx(c["mp_softrank_ww"], rel=1e-6)
    for c in compare_rows(fast.layers, theirs):
        assert c["delta_alpha"] <= 0.01, c


def test_trained_mlp_matches_weightwatcher(trained_mlp):
    _check(trained_mlp, 3, detX=True)  # incl. the 10-eigenvalue small-N branch


@pytest.mark.slow
def test_mp_fit_matches_weightwatcher(trained_mlp):
    # WeightWatcher's MP fit refits a KDE ~225 times per layer (~10 s on a loaded machine);
    # test_mp_objective_matches_weightwatcher covers the same objective quickly
    _check(trained_mlp, 1, mp_fit=True, layers=[1])


def test_mp_objective_matches_weightwatcher(trained_mlp):
    from weightwatcher.RMT_Util import resid_mp

    from analyses.esd.metrics import _MPObjective
    from analyses.esd.spectra import svd_evals

    for W, Q in ((trained_mlp[0].weight, 200 / 64), (trained_mlp[2].weight, 1.0)):
        ev = svd_evals([W.detach()])
        lam = ev * len(ev) / ev.sum()
        to_fit = np.sqrt(lam) if Q == 1 else lam
        ours = _MPObjective(to_fit, Q, 0.1)
        for sigma in (0.3, 0.6, 0.9, 1.2):
            ref = resid_mp(np.array([sigma]), to_fit, Q, 0.1, allresid=False)
            assert float(ours(np.array([sigma]))[0]) == pytest.approx(float(ref), rel=1e-9)


def test_transformer_encoder_matches_weightwatcher(encoder):
    # WeightWatcher sees out_proj, linear1, linear2 per layer (not in_proj_weight)
    _check(encoder, 6, detX=True)
    res = esd(encoder, progress=False, mp_fit=False)
    assert "layers.0.self_attn.in_proj_weight[q]" in res.names  # which WW misses


def test_conv2d_pooling_and_scaling_match_weightwatcher(convnet):
    _check(convnet, 3, detX=True)


def test_weightwatcher_backend_gives_a_side_by_side_table(trained_mlp):
    with assert_untouched(trained_mlp):
        res = esd(trained_mlp, method="compat", backend="weightwatcher", mp_fit=False)
    assert res.backend == "weightwatcher" and len(res.layers) == 3
    theirs = res.reference["layers"]
    assert {r["name"] for r in theirs} == {"0.weight", "2.weight", "4.weight"}
    assert len(res.comparison) == 3
    assert all(c["delta_alpha"] <= 1e-8 and c["same_xmin"] for c in res.comparison)
    assert not any(hasattr(m, "longname") for m in trained_mlp.modules())  # WW ran on a copy
    assert math.isfinite(res.summary["mean_alpha"])
