"""attention(model, data): statistics against the explicit ViT reference, JSON keys, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses.attention.api import attention
from analyses.attention.result import AttentionResult
from analyses.attention.rollout import rollout
from inspect_kit import zoo
from inspect_kit.errors import OptionError, UnsupportedModelError
from inspect_kit.testing import assert_untouched
from tests.test_attention_capture import ref_mha
from tests.test_attention_capture_models import vit_reference

LAYER_KEYS = {"name", "shape", "entropy", "distance", "negative_mass", "row_sum_deviation"}


@pytest.fixture(scope="module")
def karat():
    model = zoo.build("vit", attention="fourier_karat", seed=1)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.attn_fn.coef.add_(torch.randn_like(blk.attn.attn_fn.coef) * 0.3)
    return model


def test_softmax_vit_statistics_match_reference(digits):
    model = zoo.build("vit", attention="softmax", seed=2)
    x = digits.x_train[:20]
    with assert_untouched(model):
        res = attention(model, (x, digits.y_train[:20]), index=3, image_shape=(1, 8, 8))
    with torch.no_grad():
        ref = vit_reference(model, x)
    assert res.n_samples == 20 and res.grid == (4, 4) and res.prefix_tokens == 1
    assert res.label == int(digits.y_train[3])
    np.testing.assert_allclose(res.image[0], x[3].reshape(8, 8).numpy(), atol=0)
    for lay, (s, w) in zip(res.layers, ref):
        w = w.double()
        ent = -(w * w.log()).sum(-1).mean((0, 2)).numpy()
        np.testing.assert_allclose(lay.entropy, ent, atol=1e-6)
        np.testing.assert_allclose(lay.cls_attention, w[3, :, 0, 1:].reshape(4, 4, 4).numpy(),
                                   atol=1e-6)
        np.testing.assert_allclose(lay.score_range[:, 0], s.amin((0, 2, 3)).numpy(), atol=1e-6)
        assert lay.negative_mass.max() == 0 and lay.row_sum_deviation.max() < 1e-6
        assert lay.spectrum.shape == (3, 4, 17) and lay.score_spectrum.shape == (3, 4, 17)
    r = rollout([w.double() for _, w in ref])[3, 0, 1:].reshape(4, 4).numpy()
    np.testing.assert_allclose(res.rollout["map"], r, atol=1e-6)


def test_karat_requires_policy_and_reports_negative_mass(karat, digits):
    data = (digits.x_train[:16], digits.y_train[:16])
    with assert_untouched(karat), pytest.raises(OptionError, match="policy"):
        attention(karat, data)
    with assert_untouched(karat):
        res = attention(karat, data, policy="clamp", discard_ratio=0.5)
    with torch.no_grad():
        ref = vit_reference(karat, data[0])
    for lay, (_, w) in zip(res.layers, ref):
        assert not lay.softmax
        w = w.double()
        neg = (w.clamp_max(0).abs().sum((0, 2, 3)) / w.abs().sum((0, 2, 3))).numpy()
        np.testing.assert_allclose(lay.negative_mass, neg, atol=1e-6)
        dev = (w.sum(-1) - 1).abs().mean((0, 2)).numpy()
        np.testing.assert_allclose(lay.row_sum_deviation, dev, atol=1e-6)
    assert res.layers[0].negative_mass.max() > 0
    assert res.rollout["policy"] == "clamp" and res.rollout["softmax"] is False


def test_json_keys_and_round_trip(karat, digits, tmp_path):
    res = attention(karat, "digits", policy="raw", samples=8, index=7)
    d = res.to_dict()
    assert "rollout" in d and np.asarray(d["rollout"]["map"]).shape == (4, 4)
    for lay in d["layers"]:
        assert LAYER_KEYS <= set(lay)
        assert lay["shape"] == [8, 4, 17, 17] and len(lay["distance"]) == 4
    res.save(tmp_path / "a.json")
    back = AttentionResult.load(tmp_path / "a.json")
    assert back.to_dict() == d
    no_ro = attention(karat, "digits", rollout=False, samples=4)
    assert "rollout" not in no_ro.to_dict()
    assert len(no_ro.wide_frame()) == 8


def test_encoder_sequence_gets_no_invented_grid():
    # 9 tokens: a perfect square, which used to be turned into an invented 3 x 3 image grid
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                enable_nested_tensor=False).eval()
    x = torch.randn(5, 9, 8)
    with assert_untouched(enc):
        res = attention(enc, (x, torch.zeros(5, dtype=torch.long)), rollout=True, index=2)
    assert [lay.family for lay in res.layers] == ["mha", "mha"]
    assert res.kind == "sequence" and res.grid is None and res.seq_len == 9
    assert res.prefix_tokens == 0 and res.image is None
    sa = enc.layers[0].self_attn
    with torch.no_grad():
        w = ref_mha(x, x, sa.in_proj_weight, sa.in_proj_bias, 2).double()  # (5, 2, 9, 9)
    pos = torch.arange(9, dtype=torch.float64)
    dist = (w * (pos[:, None] - pos[None, :]).abs()).sum(-1).mean((0, 2))  # per head
    lay = res.layers[0]
    assert lay.distance.shape == (2,) and lay.query_attention.shape == (2, 9)
    np.testing.assert_allclose(lay.distance, dist.numpy(), atol=1e-6)
    np.testing.assert_allclose(lay.query_attention, w[2, :, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(lay.matrix, w[2].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(lay.row_sum_deviation, 0, atol=1e-6)
    assert res.rollout["map"].shape == (9,) and res.rollout["query"] == [0] * 5


def test_errors_name_the_problem(digits):
    with pytest.raises(UnsupportedModelError, match="no attention"):
        attention(nn.Linear(64, 10), "digits", samples=2)
    model = zoo.build("vit")
    with pytest.raises(OptionError, match="index"):
        attention(model, "digits", samples=4, index=4)
    with pytest.raises(OptionError, match="head_fusion"):
        attention(model, "digits", head_fusion="median")
    with pytest.raises(OptionError, match="grid"):
        attention(model, "digits", grid=(3, 3), samples=2)


def test_uniform_attention_distance_on_digits_grid():
    # zero qkv weights -> all scores 0 -> uniform softmax: the distance is the grid mean
    model = zoo.build("vit", seed=0)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight.zero_()
    res = attention(model, (torch.randn(3, 64), torch.zeros(3, dtype=torch.long)))
    pos = [(r, c) for r in range(4) for c in range(4)]
    want = np.mean([math.dist(p, q) for p in pos for q in pos])
    for lay in res.layers:
        np.testing.assert_allclose(lay.distance, want, atol=1e-9)
        np.testing.assert_allclose(lay.entropy, math.log(17), atol=1e-6)
