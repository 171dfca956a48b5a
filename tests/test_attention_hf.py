"""HuggingFace BERT, GPT-2 and ViT built from tiny configs (no downloads), eager and sdpa:
captured weights against the model's own ``output_attentions=True`` (on an eager copy)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from inspect_kit.attention import capture_attention
from inspect_kit.testing import assert_untouched

transformers = pytest.importorskip("transformers")
logging.getLogger("transformers").setLevel(logging.ERROR)

TOL = dict(atol=1e-6, rtol=0)
IMPLS = ["eager", "sdpa"]


# initializer_range 0.3 (not 0.02): peaked attention that differs per head and per input

def bert(impl, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=16, num_labels=3,
                                  initializer_range=0.3, attn_implementation=impl)
    return transformers.BertForSequenceClassification(cfg).eval()


def gpt2(impl, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                  bos_token_id=0, eos_token_id=0, initializer_range=0.3,
                                  attn_implementation=impl)
    return transformers.GPT2LMHeadModel(cfg).eval()


def vit(impl, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, image_size=8, patch_size=2, num_channels=1,
                                 num_labels=3, initializer_range=0.3, attn_implementation=impl)
    return transformers.ViTForImageClassification(cfg).eval()


def text_batch(seed=0, n=3, L=8, left_pad=False):
    """Token ids and a padding mask with a different length per sample."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 40, (n, L), generator=g)
    mask = torch.ones(n, L, dtype=torch.long)
    for i, length in enumerate([L, L - 3, L - 5][:n]):
        if left_pad:
            mask[i, :L - length] = 0
        else:
            mask[i, length:] = 0
    return ids, mask


def own_attentions(model, **inputs):
    """The model's own ``output_attentions=True`` on an eager copy (it installs permanent
    hooks on the copy, never on the model under test)."""
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        return ref(**inputs, output_attentions=True).attentions


def check_untouched_hf(model, impl):
    assert model.config._attn_implementation == impl
    assert not getattr(model, "_output_capturing_hooks_installed", False)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("build, names", [
    (bert, ["bert.encoder.layer.0.attention.self", "bert.encoder.layer.1.attention.self"]),
    (gpt2, ["transformer.h.0.attn", "transformer.h.1.attn"]),
])
def test_text_models_match_output_attentions(build, names, impl):
    model = build(impl)
    ids, mask = text_batch()
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        out = model(input_ids=ids, attention_mask=mask).logits
    check_untouched_hf(model, impl)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=0)
    ref = own_attentions(model, input_ids=ids, attention_mask=mask)
    assert rec.names == names
    assert [m.family for m in rec.maps] == ["hf" if impl == "eager" else "sdpa"] * 2
    valid = mask.bool()  # padded queries: NaN under sdpa (no key left), anything under eager
    for m, r in zip(rec.maps, ref):
        assert m.weights.shape == (3, 4, 8, 8) and r.shape == (3, 4, 8, 8)
        torch.testing.assert_close(m.weights.permute(0, 2, 1, 3)[valid],
                                   r.permute(0, 2, 1, 3)[valid], **TOL)
        assert float(m.weights[1, :, :5, 5:].abs().max()) == 0.0  # padding keys get nothing
    if build is gpt2:
        w = rec.maps[0].weights[0]
        assert float(w.triu(1).abs().max()) == 0.0  # causal
        torch.testing.assert_close(w[:, 0, 0], torch.ones(4), **TOL)


@pytest.mark.parametrize("impl", IMPLS)
def test_vit_matches_output_attentions(impl):
    model = vit(impl)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(pixel_values=x)
    check_untouched_hf(model, impl)
    ref = own_attentions(model, pixel_values=x)
    assert rec.names == ["vit.layers.0.attention", "vit.layers.1.attention"]
    for m, r in zip(rec.maps, ref):
        assert m.weights.shape == (2, 4, 17, 17)
        torch.testing.assert_close(m.weights, r, **TOL)
    w = rec.maps[1].weights
    assert (w[:, 0] - w[:, 1]).abs().max() > 1e-3 and (w[0] - w[1]).abs().max() > 1e-3


def test_families_hf_only_switches_sdpa_to_eager_for_the_context():
    model = gpt2("sdpa")
    ids, mask = text_batch(left_pad=True)
    with assert_untouched(model), torch.no_grad(), capture_attention(model, families=["hf"]) as rec:
        assert model.config._attn_implementation == "eager"
        model(input_ids=ids, attention_mask=mask)
    check_untouched_hf(model, "sdpa")
    ref = own_attentions(model, input_ids=ids, attention_mask=mask)
    assert [m.family for m in rec.maps] == ["hf", "hf"]
    for m, r in zip(rec.maps, ref):
        torch.testing.assert_close(m.weights, r, **TOL)  # eager: padded rows included


def test_implementation_restored_when_the_body_raises():
    model = gpt2("sdpa")
    with pytest.raises(RuntimeError, match="boom"):
        with assert_untouched(model), capture_attention(model, families=["hf"]):
            raise RuntimeError("boom")
    check_untouched_hf(model, "sdpa")
