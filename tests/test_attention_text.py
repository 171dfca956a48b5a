"""attention() on token sequences: tiny HF BERT and GPT-2 (eager and sdpa) with padded dict
batches, against statistics and rollout computed here from the models' own output_attentions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from analyses.attention.api import attention
from analyses.attention.result import AttentionResult
from inspect_kit.testing import assert_untouched
from tests.test_attention_hf import IMPLS, bert, gpt2, own_attentions, text_batch, vit

transformers = pytest.importorskip("transformers")


def hand_stats(weights, mask):
    """Entropy and token distance per head over real queries and real keys, written out."""
    w = torch.stack(list(weights)).double()  # (layers, B, H, L, L)
    L = w.shape[-1]
    real = mask.bool()
    ent, dist = [], []
    pos = torch.arange(L, dtype=torch.float64)
    for layer in w:
        e_h, d_h = [], []
        for h in range(layer.shape[1]):
            es, ds = [], []
            for b in range(layer.shape[0]):
                keys = real[b]
                for q in range(L):
                    if not real[b, q]:
                        continue
                    p = layer[b, h, q][keys]
                    p = p / p.sum()
                    es.append(float(-(p[p > 0] * p[p > 0].log()).sum()))
                    ds.append(float((p * (pos[keys] - q).abs()).sum()))
            e_h.append(np.mean(es))
            d_h.append(np.mean(ds))
        ent.append(e_h)
        dist.append(d_h)
    return np.array(ent), np.array(dist)


def hand_rollout(weights, query):
    """(0.5 mean_h A + 0.5 I) products, one input at a time, row ``query[b]`` of each."""
    out = []
    for b, q in enumerate(query):
        R = np.eye(weights[0].shape[-1])
        for a in weights:
            A = a[b].double().mean(0).numpy()
            A = np.where(np.isfinite(A).all(-1, keepdims=True), A, np.eye(len(A)))
            R = (0.5 * A + 0.5 * np.eye(len(A))) @ R
        out.append(R[q])
    return np.array(out)


def quiet(fn, *args, **kw):
    """Call with every warning turned into an error (the default query must not warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


@pytest.mark.parametrize("impl", IMPLS)
def test_bert_padded_batch(impl):
    model = bert(impl)
    ids, mask = text_batch()
    data = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2, 1])}
    with assert_untouched(model):
        res = quiet(attention, model, data, index=1)
    ref = own_attentions(model, input_ids=ids, attention_mask=mask)
    assert res.kind == "sequence" and res.grid is None and res.image is None
    assert res.seq_len == 8 and res.prefix_tokens == 0 and not res.causal
    np.testing.assert_array_equal(res.attention_mask, mask.numpy())
    assert res.token_ids == ids[1].tolist() and res.label == 2
    ent, dist = hand_stats(ref, mask)
    assert np.ptp(ent, axis=1).min() > 0.05  # heads differ
    for i, lay in enumerate(res.layers):
        assert lay.entropy.shape == (4,) and lay.distance.shape == (4,)
        np.testing.assert_allclose(lay.entropy, ent[i], atol=1e-6)
        np.testing.assert_allclose(lay.distance, dist[i], atol=1e-6)
        np.testing.assert_allclose(lay.query_attention, ref[i][1, :, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(lay.matrix, ref[i][1].double().mean(0).numpy(), atol=1e-6)
    # encoder: the CLS (first) token is the query of every input
    assert res.query == 0 and res.rollout["query"] == [0, 0, 0]
    assert res.rollout["degenerate"] == [] and "every token" in res.rollout["reading"]
    want = hand_rollout(ref, [0, 0, 0])
    np.testing.assert_allclose(res.rollout["map"], want[1], atol=1e-6)
    np.testing.assert_allclose(res.rollout["mean_map"], want.mean(0), atol=1e-6)
    assert np.all(res.rollout["map"][5:] == 0)  # padding never reaches a real token


def test_bert_entropy_leaves_padding_out():
    # the same sentence with and without three padding tokens gives the same statistics
    model = bert("eager")
    ids, _ = text_batch(n=1, L=5)
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    short = attention(model, {"input_ids": ids, "attention_mask": torch.ones(1, 5, dtype=torch.long)})
    long = attention(model, {"input_ids": padded, "attention_mask": mask})
    for a, b in zip(short.layers, long.layers):
        np.testing.assert_allclose(b.entropy, a.entropy, atol=1e-5)
        np.testing.assert_allclose(b.distance, a.distance, atol=1e-5)
        np.testing.assert_allclose(b.negative_fraction, a.negative_fraction, atol=1e-12)
        np.testing.assert_allclose(b.spectrum[:, :, :5], a.spectrum, atol=1e-5)
        np.testing.assert_allclose(b.spectrum[:, :, 5:], 0, atol=1e-6)


@pytest.mark.parametrize("left_pad", [False, True])
@pytest.mark.parametrize("impl", IMPLS)
def test_gpt2_rollout_from_the_last_real_token(impl, left_pad):
    model = gpt2(impl)
    ids, mask = text_batch(left_pad=left_pad)
    data = {"input_ids": ids, "attention_mask": mask, "labels": ids}
    with assert_untouched(model):
        res = quiet(attention, model, data, index=1)
    ref = own_attentions(model, input_ids=ids, attention_mask=mask)
    last = [7, 7, 7] if left_pad else [7, 4, 2]
    assert res.causal and res.kind == "sequence" and res.label is None
    assert res.rollout["query"] == last and res.query == last[1]
    assert res.rollout["degenerate"] == [] and "causal" in res.rollout["reading"]
    ent, dist = hand_stats(ref, mask)
    assert np.ptp(ent, axis=1).min() > 0.05  # heads differ
    for i, lay in enumerate(res.layers):
        np.testing.assert_allclose(lay.entropy, ent[i], atol=1e-6)
        np.testing.assert_allclose(lay.distance, dist[i], atol=1e-6)
        np.testing.assert_allclose(lay.query_attention, ref[i][1, :, last[1]].numpy(), atol=1e-6)
    real_rows = [mask[b].bool() for b in range(3)]
    want = hand_rollout([r.masked_fill(~mask.bool()[:, None, :, None], float("nan"))
                         for r in ref], last)
    np.testing.assert_allclose(res.rollout["map"], want[1], atol=1e-6)
    row = res.rollout["map"]
    assert row[real_rows[1].numpy()].min() > 0 and np.all(row[~real_rows[1].numpy()] == 0)


def test_gpt2_first_token_is_degenerate_and_warns():
    model = gpt2("sdpa")
    ids, mask = text_batch()
    with assert_untouched(model), pytest.warns(UserWarning, match="first token attends only"):
        res = attention(model, {"input_ids": ids, "attention_mask": mask}, query=0)
    assert res.rollout["degenerate"] == [0, 1, 2]
    np.testing.assert_allclose(res.rollout["map"], np.eye(8)[0], atol=1e-12)
    # the deprecated spelling still works, with a FutureWarning
    with pytest.warns(FutureWarning, match="query"), pytest.warns(UserWarning, match="one-hot"):
        old = attention(model, {"input_ids": ids, "attention_mask": mask}, cls_index=0)
    np.testing.assert_allclose(old.rollout["map"], res.rollout["map"], atol=0)


def test_query_on_padding_warns_and_bad_query_is_an_option_error():
    from inspect_kit.errors import OptionError

    model = gpt2("eager")
    ids, mask = text_batch(left_pad=True)
    with pytest.warns(UserWarning, match="padding"):
        attention(model, {"input_ids": ids, "attention_mask": mask}, query=1, index=2)
    with pytest.raises(OptionError, match="query"):
        attention(model, {"input_ids": ids, "attention_mask": mask}, query=8)
    with pytest.raises(OptionError, match="query"):
        attention(model, {"input_ids": ids, "attention_mask": mask}, query=-6)  # input 2: 3


def test_sequence_result_round_trip(tmp_path):
    model = gpt2("eager")
    ids, mask = text_batch()
    res = attention(model, {"input_ids": ids, "attention_mask": mask})
    res.save(tmp_path / "a.json")
    back = AttentionResult.load(tmp_path / "a.json")
    assert back.to_dict() == res.to_dict()
    assert back.kind == "sequence" and back.causal and back.attention_mask.dtype == np.int64


@pytest.mark.parametrize("impl", IMPLS)
def test_hf_vit_is_an_image_with_the_config_grid(impl):
    model = vit(impl)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with assert_untouched(model):
        res = quiet(attention, model, {"pixel_values": x, "labels": torch.tensor([0, 1, 2, 0])},
                    index=3)
    ref = own_attentions(model, pixel_values=x)
    assert res.kind == "image" and res.grid == (4, 4) and res.prefix_tokens == 1
    assert res.image.shape == (1, 8, 8) and res.label == 0 and not res.causal
    for lay, r in zip(res.layers, ref):
        assert lay.query_attention.shape == (4, 4, 4)
        np.testing.assert_allclose(lay.query_attention,
                                   r[3, :, 0, 1:].reshape(4, 4, 4).numpy(), atol=1e-6)
    want = hand_rollout(ref, [0] * 4)[3, 1:].reshape(4, 4)
    np.testing.assert_allclose(res.rollout["map"], want, atol=1e-6)
