"""capture_attention on the zoo ViT (softmax, Fourier-KArAt) and on HuggingFace-style models."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit import zoo
from inspect_kit.attention import capture_attention
from inspect_kit.testing import assert_untouched

TOL = dict(atol=1e-6, rtol=0)


def fourier(coef_h, s):
    """sum_g a_g cos(g s) + b_g sin(g s), written as a loop over g."""
    out = torch.zeros_like(s)
    for g in range(coef_h.shape[-1]):
        out = out + coef_h[0, g] * torch.cos((g + 1) * s) + coef_h[1, g] * torch.sin((g + 1) * s)
    return out


def vit_reference(model, x):
    """Explicit forward of the zoo ViT, head by head: per block (scores, weights)."""
    B = len(x)
    p, S = model.patch_size, model.image_size
    img = x.reshape(B, S, S)
    patches = torch.stack([img[:, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(B, -1)
                           for i in range(S // p) for j in range(S // p)], 1)
    h = torch.cat([model.cls_token.expand(B, -1, -1), model.patch_embed(patches)], 1)
    h = h + model.pos_embed
    out = []
    for blk in model.blocks:
        a = blk.attn
        z = blk.norm1(h)
        q, k, v = (z @ W.T + b for W, b in zip(a.qkv.weight.chunk(3), a.qkv.bias.chunk(3)))
        hd = a.head_dim
        scores, weights, mixed = [], [], []
        for j in range(a.heads):
            sl = slice(j * hd, (j + 1) * hd)
            s = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(hd)
            w = torch.softmax(s, -1) if model.attention == "softmax" \
                else fourier(a.attn_fn.coef[j], s)
            scores.append(s)
            weights.append(w)
            mixed.append(w @ v[..., sl])
        out.append((torch.stack(scores, 1), torch.stack(weights, 1)))
        h = h + a.proj(torch.cat(mixed, -1))
        h = h + blk.mlp(blk.norm2(h))
    return out


@pytest.mark.parametrize("attention", ["softmax", "fourier_karat"])
def test_zoo_vit_scores_and_weights(attention):
    model = zoo.build("vit", attention=attention, seed=3).eval()
    with torch.no_grad():  # make the KArAt function non-trivial
        for blk in model.blocks:
            if attention == "fourier_karat":
                blk.attn.attn_fn.coef.add_(torch.randn_like(blk.attn.attn_fn.coef) * 0.3)
    x = torch.randn(5, 64)
    with torch.no_grad():
        ref = vit_reference(model, x)
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(x)
    assert rec.names == ["blocks.0.attn", "blocks.1.attn"]
    for m, (s, w) in zip(rec.maps, ref):
        assert m.family == "attn_fn" and m.weights.shape == (5, 4, 17, 17)
        assert m.softmax == (attention == "softmax")
        torch.testing.assert_close(m.scores, s, **TOL)
        torch.testing.assert_close(m.weights, w, **TOL)
    if attention == "fourier_karat":
        assert (rec.maps[0].weights < 0).any()


# ---------------------------------------------------------------- HuggingFace-style (duck-typed)

@dataclasses.dataclass
class FakeOutput:
    last_hidden_state: torch.Tensor
    attentions: tuple | None = None


class FakeConfig:
    def __init__(self):
        self._attn_implementation = "sdpa"
        self.output_attentions = False


class FakeHF(nn.Module):
    """Mimics transformers' attention interface: sdpa returns no weights, eager does."""

    def __init__(self, with_setter: bool):
        super().__init__()
        self.config = FakeConfig()
        self.layers = nn.ModuleList(nn.Linear(8, 16) for _ in range(2))
        self.setter_calls = []
        if with_setter:
            self.set_attn_implementation = self._set

    def _set(self, impl):
        self.setter_calls.append(impl)
        self.config._attn_implementation = impl

    def forward(self, x, output_attentions=None):
        atts = []
        for lin in self.layers:
            q, k = lin(x).unsqueeze(1).chunk(2, -1)
            if self.config._attn_implementation == "eager":
                w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1)
                o = w @ k
            else:
                o, w = F.scaled_dot_product_attention(q, k, k), None
            atts.append(w)
            x = x + o.squeeze(1)
        return FakeOutput(x, tuple(atts) if output_attentions else None)


@pytest.mark.parametrize("with_setter", [True, False])
def test_hf_style_switches_to_eager_and_restores(with_setter):
    torch.manual_seed(8)
    model = FakeHF(with_setter).eval()
    x = torch.randn(3, 6, 8)
    ref, h = [], x
    with torch.no_grad():
        for lin in model.layers:  # independent explicit computation
            q, k = lin(h).chunk(2, -1)
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1)
            ref.append(w)
            h = h + w @ k
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        out = model(x)
    assert out.attentions is None  # the caller did not ask for them
    assert model.config._attn_implementation == "sdpa"
    if with_setter:
        assert model.setter_calls == ["eager", "sdpa"]
    assert rec.names == ["attentions.0", "attentions.1"]
    for m, r in zip(rec.maps, ref):
        assert m.family == "hf" and m.scores is None
        torch.testing.assert_close(m.weights, r.unsqueeze(1), **TOL)


def test_real_transformers_vit_if_installed():
    """Current transformers: ``attn_implementation`` goes through the config (the model
    constructors no longer take it); the reference is ``output_attentions`` on an eager copy,
    because transformers installs permanent hooks on the model that asks for it."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, image_size=8, patch_size=2, num_channels=1,
                                 attn_implementation="sdpa")
    model = transformers.ViTModel(cfg).eval()
    x = torch.randn(2, 1, 8, 8)
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(pixel_values=x)
    assert model.config._attn_implementation == "sdpa"
    ref_model = copy.deepcopy(model)
    ref_model.set_attn_implementation("eager")
    with torch.no_grad():
        ref = ref_model(pixel_values=x, output_attentions=True).attentions
    assert len(rec) == len(ref) == 2
    for m, r in zip(rec.maps, ref):
        assert m.weights.shape == r.shape == (2, 2, 17, 17)
        torch.testing.assert_close(m.weights, r, **TOL)


def test_hf_style_restored_when_the_body_raises():
    model = FakeHF(with_setter=False)
    with pytest.raises(RuntimeError, match="boom"):
        with assert_untouched(model), capture_attention(model):
            assert model.config._attn_implementation == "eager"
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
