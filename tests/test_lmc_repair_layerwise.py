"""REPAIR against hand-computed pre-activation statistics, the 1/sqrt(2) variance collapse of
two independent random layers, BatchNorm reset, and layer-wise LMC on pairs that differ in one
layer only."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses.lmc.api import lmc
from analyses.lmc.layerwise import layerwise_barriers
from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec
from analyses.lmc.repair import layer_stats, repair_targets, repaired_point, reset_batchnorm
from inspect_kit import zoo
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView


def _hidden(model, x):
    """Pre-activations of the two hidden Linear layers, by hand."""
    w = dict(model.named_parameters())
    h1 = x @ w["layers.0.weight"].T + w["layers.0.bias"]
    h2 = torch.relu(h1) @ w["layers.2.weight"].T + w["layers.2.bias"]
    return h1.double(), h2.double()


@pytest.mark.parametrize("t", [0.3, 0.5])
def test_repaired_units_have_interpolated_endpoint_statistics(t):
    a = zoo.build("mlp", sizes=(10, 24, 16, 3), seed=0)
    b = zoo.build("mlp", sizes=(10, 24, 16, 3), seed=1)
    x = torch.randn(500, 10)
    sa, sb = model_state(a), model_state(b)
    with assert_untouched(a), assert_untouched(b):
        targets = repair_targets(a, permutation_spec(a, x[:4]))
        assert targets == ["layers.0", "layers.2"]
        view = ModelView(a, (x,))
        ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
        p = repaired_point(view, sb, list(sa), t, targets, ends)
    with torch.no_grad():
        ha, hb, hr = _hidden(a, x), _hidden(b, x), _hidden(load_state_copy(a, p), x)
    for k in range(2):
        want_mu = (1 - t) * ha[k].mean(0) + t * hb[k].mean(0)
        want_sd = (1 - t) * ha[k].std(0, unbiased=False) + t * hb[k].std(0, unbiased=False)
        torch.testing.assert_close(hr[k].mean(0), want_mu, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(hr[k].std(0, unbiased=False), want_sd, atol=1e-4, rtol=1e-4)


def test_repair_at_t0_is_identity():
    a = zoo.build("mlp", sizes=(10, 12, 3), seed=0)
    b = zoo.build("mlp", sizes=(10, 12, 3), seed=1)
    x = torch.randn(200, 10)
    sa, sb = model_state(a), model_state(b)
    targets = ["layers.0"]
    view = ModelView(a, (x,))
    ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
    p = repaired_point(view, sb, list(sa), 0.0, targets, ends)
    for n in sa:
        torch.testing.assert_close(p[n], sa[n], atol=1e-5, rtol=1e-5)


def test_variance_collapse_of_independent_layers_is_one_over_sqrt2():
    # two independent random first layers: Var[(W_A + W_B) x / 2] = Var[W x] / 2
    a = zoo.build("mlp", sizes=(64, 512, 10), seed=0)
    b = zoo.build("mlp", sizes=(64, 512, 10), seed=1)
    x = torch.randn(1000, 64)
    y = torch.randint(0, 10, (1000,))
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, (x, y), repair=True, steps=3, refine=False)
    ratio = res.repair["variance_ratio"]["layers.0"]
    assert ratio == pytest.approx(1 / math.sqrt(2), abs=0.03)
    assert res.repair["variance_ratio_repaired"]["layers.0"] == pytest.approx(1.0, abs=1e-4)
    assert "repaired" in res.curves


def test_batchnorm_reset_uses_data_statistics():
    m = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 2))
    x = torch.randn(300, 5)
    p = model_state(m)
    p = {k: v.clone() for k, v in p.items()}
    with assert_untouched(m):
        reset_batchnorm(ModelView(m, (x,), batch_size=64), p)
    z = x @ m[0].weight.detach().T + m[0].bias.detach()
    torch.testing.assert_close(p["1.running_mean"], z.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p["1.running_var"], z.var(0, unbiased=True), atol=1e-5, rtol=1e-5)


def test_layerwise_only_the_changed_layer_has_a_barrier(digits):
    a = zoo.build("mlp", sizes=(64, 16, 16, 10), seed=0)
    b = copy.deepcopy(a)
    other = zoo.build("mlp", sizes=(64, 16, 16, 10), seed=7)
    b.layers[2].load_state_dict(other.layers[2].state_dict())
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, digits, layerwise=True, steps=7, refine=False, split="both")
    lw = res.layerwise
    assert lw["names"] == ["layers.0", "layers.2", "layers.4"]
    for kind in ("barrier_mean", "barrier_linear"):
        for split in ("train", "test"):
            vals = lw[kind]["loss"][split]
            assert abs(vals[0]) < 1e-6 and abs(vals[2]) < 1e-6  # nothing moves: flat path
            assert vals[1] == pytest.approx(res.curves["naive"][kind]["loss"][split], abs=1e-6)


def test_layerwise_groups_cover_tensors_outside_modules():
    a = zoo.build("vit", dim=16, depth=1, heads=2, seed=0)
    b = zoo.build("vit", dim=16, depth=1, heads=2, seed=1)
    x = torch.randn(20, 64)
    y = torch.randint(0, 10, (20,))
    with assert_untouched(a), assert_untouched(b):
        view = ModelView(a, (x, y))
        lw = layerwise_barriers({"data": view}, view.direction_to(model_state(b), all_params=True),
                                steps=3)
    assert "cls_token" in lw["names"] and "blocks.0.mlp.fc1" in lw["names"]
    assert np.all(np.isfinite(lw["barrier_linear"]["loss"]["data"]))


def test_repair_of_kan_nodes_matches_interpolated_statistics():
    a = zoo.build("kan", width=[3, 6, 2], seed=0)
    b = zoo.build("kan", width=[3, 6, 2], seed=1)
    x = torch.rand(400, 3) * 2 - 1
    sa, sb = model_state(a), model_state(b)
    with assert_untouched(a), assert_untouched(b):
        targets = repair_targets(a, permutation_spec(a, x[:4]))
        assert targets == ["layers.0"]
        view = ModelView(a, (x,))
        ends = (layer_stats(view, sa, targets), layer_stats(view, sb, targets))
        p = repaired_point(view, sb, list(sa), 0.5, targets, ends)
    with torch.no_grad():  # node values = input of layer 1, by the model's own plain forward
        za, zb = a.layer_inputs(x)[1].double(), b.layer_inputs(x)[1].double()
        zr = load_state_copy(a, p).layer_inputs(x)[1].double()
    torch.testing.assert_close(zr.mean(0), (za.mean(0) + zb.mean(0)) / 2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(zr.std(0, unbiased=False),
                               (za.std(0, unbiased=False) + zb.std(0, unbiased=False)) / 2,
                               atol=1e-4, rtol=1e-4)
