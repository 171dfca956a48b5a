"""capture_attention against unfused reference computations written out here, family by family."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.attention import capture_attention, sdpa_weights
from inspect_kit.errors import OptionError
from inspect_kit.testing import assert_untouched

TOL = dict(atol=1e-6, rtol=0)


def ref_mha(x_q, x_k, w_in, b_in, heads, add_mask=None):
    """Loop-over-heads reference of MHA's softmax(q k^T / sqrt(hd) + mask); inputs (B, L, E)."""
    E = x_q.shape[-1]
    hd = E // heads
    q = x_q @ w_in[:E].T + b_in[:E]
    k = x_k @ w_in[E:2 * E].T + b_in[E:2 * E]
    if add_mask is not None and add_mask.dim() == 4:
        add_mask = add_mask[:, 0]  # (B, 1, L, S) -> (B, L, S), shared by the heads
    out = []
    for h in range(heads):
        qh, kh = q[..., h * hd:(h + 1) * hd], k[..., h * hd:(h + 1) * hd]
        s = qh @ kh.transpose(-1, -2) / math.sqrt(hd)
        if add_mask is not None:
            s = s + add_mask
        out.append(torch.softmax(s, -1))
    return torch.stack(out, 1)


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_weights_scores_and_caller_output(batch_first):
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(12, 3, batch_first=batch_first).eval()
    x = torch.randn(2, 5, 12)
    xin = x if batch_first else x.transpose(0, 1)
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[0, 3] = mask[2, 1] = True  # True = not allowed (MHA convention)
    kpm = torch.zeros(2, 5, dtype=torch.bool)
    kpm[1, 4] = True
    with torch.no_grad():
        out_plain, w_plain = mha(xin, xin, xin, attn_mask=mask, key_padding_mask=kpm)
    with assert_untouched(mha), torch.no_grad(), capture_attention(mha) as rec:
        out, w = mha(xin, xin, xin, attn_mask=mask, key_padding_mask=kpm)
    add = torch.zeros(2, 1, 5, 5).masked_fill(mask, -math.inf)
    add = add.masked_fill(kpm[:, None, None, :], -math.inf)
    ref = ref_mha(x, x, mha.in_proj_weight, mha.in_proj_bias, 3, add)
    (m,) = rec.maps
    assert m.family == "mha" and m.weights.shape == (2, 3, 5, 5) and m.softmax
    torch.testing.assert_close(m.weights, ref, **TOL)
    torch.testing.assert_close(torch.softmax(m.scores, -1), ref, **TOL)
    assert torch.isinf(m.scores[1, :, :, 4]).all() and torch.isinf(m.scores[:, :, 0, 3]).all()
    # the caller still gets head-averaged weights, as it asked
    assert w.shape == (2, 5, 5)
    torch.testing.assert_close(w, w_plain, **TOL)
    torch.testing.assert_close(out, out_plain, atol=1e-6, rtol=0)


def test_mha_unbatched_and_need_weights_false():
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2).eval()
    x = torch.randn(4, 8)
    with torch.no_grad(), capture_attention(mha) as rec:
        _, w = mha(x, x, x, need_weights=False)
    assert w is None
    ref = ref_mha(x[None], x[None], mha.in_proj_weight, mha.in_proj_bias, 2)
    torch.testing.assert_close(rec.maps[0].weights, ref, **TOL)


def test_transformer_encoder_layers_in_fast_path_mode():
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(3, 6, 16)
    with torch.no_grad():
        h1 = enc.layers[0](x)
        out_plain = enc(x)
    with assert_untouched(enc), torch.no_grad(), capture_attention(enc) as rec:
        out = enc(x)
    assert rec.names == ["layers.0.self_attn", "layers.1.self_attn"]
    for m, inp in zip(rec.maps, (x, h1)):
        sa = enc.get_submodule(m.name)
        ref = ref_mha(inp, inp, sa.in_proj_weight, sa.in_proj_bias, 4)
        torch.testing.assert_close(m.weights, ref, **TOL)
        torch.testing.assert_close(torch.softmax(m.scores, -1), ref, **TOL)
    torch.testing.assert_close(out, out_plain, atol=1e-5, rtol=0)
    assert torch.backends.mha.get_fastpath_enabled()


def test_transformer_encoder_with_padding_mask_nested_path():
    torch.manual_seed(4)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 1).eval()  # nested tensors enabled by default
    x = torch.randn(2, 5, 8)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with assert_untouched(enc), torch.no_grad(), capture_attention(enc) as rec:
        enc(x, src_key_padding_mask=kpm)
    add = torch.zeros(2, 1, 1, 5).masked_fill(kpm[:, None, None, :], -math.inf)
    sa = enc.layers[0].self_attn
    ref = ref_mha(x, x, sa.in_proj_weight, sa.in_proj_bias, 2, add)
    torch.testing.assert_close(rec.maps[0].weights, ref, **TOL)


class TimmAttention(nn.Module):
    """timm-style attention: fused SDPA path or the explicit path with ``attn_drop``."""

    def __init__(self, dim=16, heads=4, fused=True, p=0.0, gqa_kv_heads=None):
        super().__init__()
        self.heads, self.hd, self.fused = heads, dim // heads, fused
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(p)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, attn_mask=None, is_causal=False):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        if self.fused:
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            a = (q * self.scale) @ k.transpose(-2, -1)
            if is_causal:
                a = a.masked_fill(~torch.ones(N, N, dtype=torch.bool).tril(), -math.inf)
            if attn_mask is not None:
                a = a.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool \
                    else a + attn_mask
            a = self.attn_drop(a.softmax(-1))
            o = a @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, C))


class TwoBlocks(nn.Module):
    def __init__(self, fused=True, p=0.0):
        super().__init__()
        self.blocks = nn.ModuleList(TimmAttention(fused=fused, p=p) for _ in range(2))

    def forward(self, x, **kw):
        for b in self.blocks:
            x = x + b(x, **kw)
        return x


def unfused_reference(model, x, **kw):
    """Flip every block to the explicit path and read the softmax at ``attn_drop``'s input."""
    ref = []
    hooks = [b.attn_drop.register_forward_hook(lambda m, a, o: ref.append(a[0]))
             for b in model.blocks]
    for b in model.blocks:
        b.fused = False
    try:
        out = model(x, **kw)
    finally:
        for b in model.blocks:
            b.fused = True
        for h in hooks:
            h.remove()
    return out, ref


MASKS = {
    "none": {},
    "causal": {"is_causal": True},
    "bool": {"attn_mask": torch.rand(7, 7, generator=torch.Generator().manual_seed(0)) > 0.3},
    "float": {"attn_mask": torch.randn(7, 7, generator=torch.Generator().manual_seed(1))},
}


@pytest.mark.parametrize("kind", list(MASKS))
def test_sdpa_timm_style_matches_unfused(kind):
    torch.manual_seed(5)
    kw = dict(MASKS[kind])
    if kind == "bool":
        kw["attn_mask"] = kw["attn_mask"] | torch.eye(7, dtype=torch.bool)
    model = TwoBlocks().eval()
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        fused_out = model(x, **kw)
        ref_out, ref = unfused_reference(model, x, **kw)
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        out = model(x, **kw)
    assert torch.equal(out, fused_out)  # the original kernel ran
    assert rec.names == ["blocks.0", "blocks.1"]
    for m, r in zip(rec.maps, ref):
        assert m.family == "sdpa" and m.weights.shape == (3, 4, 7, 7)
        torch.testing.assert_close(m.weights, r, **TOL)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)


def test_sdpa_dropout_is_off_for_recorded_weights():
    torch.manual_seed(6)
    model = TwoBlocks(p=0.5).train()
    x = torch.randn(2, 7, 16)
    with torch.no_grad(), capture_attention(model) as rec:
        model(x)
    model.eval()
    with torch.no_grad():
        _, ref = unfused_reference(model, x)
    torch.testing.assert_close(rec.maps[0].weights, ref[0], **TOL)
    torch.testing.assert_close(rec.maps[0].weights.sum(-1), torch.ones(2, 4, 7), **TOL)


def test_sdpa_scale_and_gqa_closed_form():
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))
    kv = k[:, :2]
    s, w = sdpa_weights(q, kv, scale=0.3, enable_gqa=True)
    kk = torch.cat([kv[:, :1], kv[:, :1], kv[:, 1:], kv[:, 1:]], 1)
    torch.testing.assert_close(w, torch.softmax(0.3 * q @ kk.transpose(-1, -2), -1), **TOL)
    out = F.scaled_dot_product_attention(q, kv, v[:, :2], scale=0.3, enable_gqa=True)
    torch.testing.assert_close(out, w @ torch.cat([v[:, :1]] * 2 + [v[:, 1:2]] * 2, 1),
                               atol=1e-5, rtol=0)


BOUND_SRC = '''
import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention as sdpa

class BoundAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qk = nn.Linear(8, 16)

    def forward(self, x):
        q, k = self.qk(x).unsqueeze(1).chunk(2, -1)
        return sdpa(q, k, k)
'''


def test_sdpa_bound_at_import_time_is_patched_and_restored():
    mod = types.ModuleType("_ik_test_bound_sdpa")
    sys.modules[mod.__name__] = mod
    try:
        exec(BOUND_SRC, mod.__dict__)
        model = mod.BoundAttention()
        x = torch.randn(2, 5, 8)
        original = F.scaled_dot_product_attention
        assert mod.sdpa is original
        with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
            model(x)
        assert mod.sdpa is original
        assert rec.names == ["BoundAttention"]  # the root module, named by its type
        q, k = model.qk(x).unsqueeze(1).chunk(2, -1)
        ref = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), -1)
        torch.testing.assert_close(rec.maps[0].weights, ref.detach(), **TOL)
    finally:
        del sys.modules[mod.__name__]


def test_everything_restored_when_the_body_raises():
    model = nn.ModuleDict({"a": TwoBlocks(), "m": nn.MultiheadAttention(16, 4)})
    original = F.scaled_dot_product_attention
    with pytest.raises(RuntimeError, match="boom"):
        with assert_untouched(model), capture_attention(model) as rec:
            model["a"](torch.randn(1, 7, 16))
            assert F.scaled_dot_product_attention is not original
            raise RuntimeError("boom")
    assert len(rec) == 2
    assert F.scaled_dot_product_attention is original
    assert torch.backends.mha.get_fastpath_enabled()


def test_restored_when_the_forward_itself_raises():
    model = TwoBlocks()
    with pytest.raises(RuntimeError):
        with assert_untouched(model), capture_attention(model):
            model(torch.randn(1, 7, 15))  # wrong width: qkv raises inside a hooked module


def test_bad_family_is_an_option_error():
    with pytest.raises(OptionError, match="families"):
        with capture_attention(nn.Linear(2, 2), families=["flash"]):
            pass


class Mixed(nn.Module):
    """Three families in one model, called out of definition order, one module twice."""

    def __init__(self):
        super().__init__()
        from inspect_kit.zoo.vit import Attention, SoftmaxScores

        self.z = Attention(16, 4, SoftmaxScores())
        self.t = TimmAttention()
        self.m = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        x = x + self.t(x)
        x = x + self.m(x, x, x, need_weights=False)[0]
        x = x + self.z(x)
        return x + self.t(x)


def test_mixed_families_in_call_order():
    torch.manual_seed(9)
    model = Mixed().eval()
    x = torch.randn(2, 7, 16)
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(x)
    assert [(m.name, m.family, m.call) for m in rec.maps] == [
        ("t", "sdpa", 0), ("m", "mha", 0), ("z", "attn_fn", 0), ("t", "sdpa", 1)]
    with torch.no_grad():  # the second call of t sees the input after m and z
        h = x + model.t(x)
        h = h + model.m(h, h, h)[0]
        h = h + model.z(h)
        model.t.fused = False
        ref = []
        hook = model.t.attn_drop.register_forward_hook(lambda m, a, o: ref.append(a[0]))
        try:
            model.t(h)
        finally:
            model.t.fused = True
            hook.remove()
    torch.testing.assert_close(rec.maps[3].weights, ref[0], **TOL)
