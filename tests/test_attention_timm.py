"""timm-structured attention without timm (it needs a torchvision that matches the CPU torch):
``Attention`` on both ``fused_attn`` paths and Swin's shifted-window ``WindowAttention``,
written as in timm (``timm/layers/attention.py``, ``timm/models/swin_transformer.py``), checked
against a recomputation from q and k written out here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.attention import capture_attention
from inspect_kit.testing import assert_untouched

TOL = dict(atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ timm Attention

class Attention(nn.Module):
    """timm ``Attention``: qkv Linear, optional q/k norm, SDPA when ``fused_attn`` else the
    explicit softmax followed by ``attn_drop``."""

    def __init__(self, dim=32, num_heads=4, qkv_bias=True, qk_norm=False, attn_drop=0.0,
                 fused_attn=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x, attn_mask=None, is_causal=False):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask,
                dropout_p=self.attn_drop.p if self.training else 0.0, is_causal=is_causal)
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            if is_causal:
                bias = attn.new_full((N, N), float("-inf")).triu_(1)
            elif attn_mask is None:
                bias = None
            elif attn_mask.dtype == torch.bool:
                bias = torch.zeros_like(attn_mask, dtype=attn.dtype)
                bias.masked_fill_(~attn_mask, float("-inf"))
            else:
                bias = attn_mask
            attn = attn if bias is None else attn + bias
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    def __init__(self, dim=32, **kw):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, **kw)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x, **kw):
        x = x + self.attn(self.norm1(x), **kw)
        return x + self.mlp(self.norm2(x))


class TimmViTBlocks(nn.Module):
    def __init__(self, depth=2, **kw):
        super().__init__()
        self.blocks = nn.ModuleList(Block(**kw) for _ in range(depth))

    def forward(self, x, **kw):
        for b in self.blocks:
            x = b(x, **kw)
        return x

    def set_fused(self, fused):
        for b in self.blocks:
            b.attn.fused_attn = fused


def timm_reference(model, x, **kw):
    """Per block: softmax((q_norm(q) k_norm(k)^T) / sqrt(hd) + mask), q and k from the qkv
    weights, head by head, and the block outputs (for the next block's input)."""
    maps = []
    N = x.shape[1]
    for blk in model.blocks:
        a = blk.attn
        z = blk.norm1(x)
        W, b = a.qkv.weight, a.qkv.bias
        C = z.shape[-1]
        q_all, k_all = z @ W[:C].T + b[:C], z @ W[C:2 * C].T + b[C:2 * C]
        heads = []
        for h in range(a.num_heads):
            sl = slice(h * a.head_dim, (h + 1) * a.head_dim)
            s = a.q_norm(q_all[..., sl]) @ a.k_norm(k_all[..., sl]).transpose(-1, -2)
            s = s / math.sqrt(a.head_dim)
            if kw.get("is_causal"):
                s = s.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), -math.inf)
            m = kw.get("attn_mask")
            if m is not None:
                s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m
            heads.append(torch.softmax(s, -1))
        maps.append(torch.stack(heads, 1))
        x = blk(x, **kw)
    return maps


MASKS = {
    "none": {},
    "causal": {"is_causal": True},
    "bool": {"attn_mask": (torch.rand(6, 6, generator=torch.Generator().manual_seed(0)) > 0.4)
             | torch.eye(6, dtype=torch.bool)},
    "float": {"attn_mask": torch.randn(6, 6, generator=torch.Generator().manual_seed(1))},
}


@pytest.mark.parametrize("qk_norm", [False, True])
@pytest.mark.parametrize("kind", list(MASKS))
def test_timm_attention_both_fused_paths_match_recomputation(kind, qk_norm):
    torch.manual_seed(11)
    model = TimmViTBlocks(qk_norm=qk_norm).eval()
    if qk_norm:  # non-trivial norm affine, different per block
        with torch.no_grad():
            for b in model.blocks:
                b.attn.q_norm.weight.normal_(1.0, 0.3)
                b.attn.k_norm.bias.normal_(0.0, 0.3)
    x = torch.randn(3, 6, 32)
    kw = MASKS[kind]
    with torch.no_grad():
        ref = timm_reference(model, x, **kw)
        plain = model(x, **kw)
    got = {}
    for fused in (True, False):
        model.set_fused(fused)
        try:
            with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
                out = model(x, **kw)
        finally:
            model.set_fused(True)
        assert F.scaled_dot_product_attention.__name__ == "scaled_dot_product_attention"
        torch.testing.assert_close(out, plain, atol=1e-5, rtol=0)
        assert rec.names == ["blocks.0.attn", "blocks.1.attn"]
        assert [m.family for m in rec.maps] == ["sdpa" if fused else "attn_drop"] * 2
        for m, r in zip(rec.maps, ref):
            assert m.weights.shape == (3, 4, 6, 6) and m.softmax and m.windows is None
            torch.testing.assert_close(m.weights, r, **TOL)
        got[fused] = rec.maps
    for a, b in zip(got[True], got[False]):  # the two paths give the same maps
        torch.testing.assert_close(a.weights, b.weights, **TOL)
    # the maps differ per head and per sample (no broadcasting can make the checks pass)
    w = got[False][0].weights
    assert (w[:, 0] - w[:, 1]).abs().max() > 1e-3 and (w[0] - w[1]).abs().max() > 1e-3


def test_explicit_path_records_before_dropout_in_train_mode():
    torch.manual_seed(12)
    model = TimmViTBlocks(attn_drop=0.5, fused_attn=False)
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        ref = timm_reference(model.eval(), x)
    model.train()
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(x)
    assert len(rec) == 2
    # block 0 sees the same input in train mode (dropout acts after its softmax)
    torch.testing.assert_close(rec.maps[0].weights, ref[0], **TOL)
    torch.testing.assert_close(rec.maps[1].weights.sum(-1), torch.ones(2, 4, 6), **TOL)


class DropoutOnOutput(nn.Module):
    """An ``attn_drop`` that is applied to a value mix, not to attention: never recorded."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.attn_drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.attn_drop(self.lin(x).unsqueeze(1))


def test_attn_drop_on_something_else_is_not_attention():
    model = DropoutOnOutput().eval()
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        model(torch.randn(2, 5, 8))
    assert len(rec) == 0
    assert rec.problems and "not a row softmax" in rec.problems[0]


# ------------------------------------------------------------------------------- Swin windows

def window_partition(x, ws):
    B, H, W, C = x.shape
    x = x.view(B, H // ws[0], ws[0], W // ws[1], ws[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws[0], ws[1], C)


def window_reverse(windows, ws, H, W):
    C = windows.shape[-1]
    x = windows.view(-1, H // ws[0], W // ws[1], ws[0], ws[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)


def relative_position_index(wh, ww):
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    return rel.sum(-1)


class WindowAttention(nn.Module):
    """timm ``WindowAttention``: relative position bias, optional shift mask, both paths."""

    def __init__(self, dim, num_heads, window_size, fused_attn=False):
        super().__init__()
        self.window_size = window_size
        self.window_area = window_size[0] * window_size[1]
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.fused_attn = fused_attn
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(*window_size),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def _get_rel_pos_bias(self):
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(self.window_area, self.window_area, -1).permute(2, 0, 1).contiguous()
        return bias.unsqueeze(0)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if self.fused_attn:
            attn_mask = self._get_rel_pos_bias()
            if mask is not None:
                nw = mask.shape[0]
                mask = mask.view(1, nw, 1, N, N).expand(B_ // nw, -1, self.num_heads, -1, -1)
                attn_mask = attn_mask + mask.reshape(-1, self.num_heads, N, N)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = attn + self._get_rel_pos_bias()
            if mask is not None:
                nw = mask.shape[0]
                attn = attn.view(-1, nw, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
                attn = attn.view(-1, self.num_heads, N, N)
            attn = self.attn_drop(self.softmax(attn))
            x = attn @ v
        return self.proj(x.transpose(1, 2).reshape(B_, N, -1))


class SwinBlock(nn.Module):
    """timm ``SwinTransformerBlock`` (no padding case): cyclic shift, windows, -100 mask."""

    def __init__(self, dim, input_resolution, num_heads, window_size, shift_size, fused=False):
        super().__init__()
        self.input_resolution = input_resolution
        self.window_size = (window_size, window_size)
        self.shift_size = (shift_size, shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, self.window_size, fused)
        self.register_buffer("attn_mask", self.get_attn_mask(), persistent=False)

    def get_attn_mask(self):
        if not any(self.shift_size):
            return None
        H, W = self.input_resolution
        img = torch.zeros(1, H, W, 1)
        cnt = 0
        ws, s = self.window_size, self.shift_size
        for h in ((0, -ws[0]), (-ws[0], -s[0]), (-s[0], None)):
            for w in ((0, -ws[1]), (-ws[1], -s[1]), (-s[1], None)):
                img[:, h[0]:h[1], w[0]:w[1], :] = cnt
                cnt += 1
        mw = window_partition(img, ws).view(-1, ws[0] * ws[1])
        m = mw.unsqueeze(1) - mw.unsqueeze(2)
        return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)

    def forward(self, x):
        B, H, W, C = x.shape
        shortcut = x
        x = self.norm1(x)
        if any(self.shift_size):
            x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
        win = window_partition(x, self.window_size).view(-1, self.attn.window_area, C)
        out = self.attn(win, mask=self.attn_mask)
        x = window_reverse(out.view(-1, *self.window_size, C), self.window_size, H, W)
        if any(self.shift_size):
            x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
        return shortcut + x


class TinySwin(nn.Module):
    """Two Swin blocks on an 8 x 8 map with 4 x 4 windows: W-MSA, then SW-MSA (shift 2)."""

    def __init__(self, fused=False, dim=16, heads=2):
        super().__init__()
        self.layers = nn.Sequential(SwinBlock(dim, (8, 8), heads, 4, 0, fused),
                                    SwinBlock(dim, (8, 8), heads, 4, 2, fused))

    def forward(self, x):
        return self.layers(x)


def region(p, L, ws, s):
    """timm's three shift regions along one axis of length L (0: untouched, 1, 2: wrapped)."""
    return 0 if p < L - ws else (1 if p < L - s else 2)


def swin_reference(blk, x):
    """Scores and weights (B * nW, H, N, N) of one block, pair by pair and head by head."""
    B, H, W, C = x.shape
    ws, s = blk.window_size[0], blk.shift_size[0]
    z = torch.roll(blk.norm1(x), shifts=(-s, -s), dims=(1, 2))
    a = blk.attn
    heads, hd = a.num_heads, C // a.num_heads
    Wq, Wk = a.qkv.weight[:C], a.qkv.weight[C:2 * C]
    bq, bk = a.qkv.bias[:C], a.qkv.bias[C:2 * C]
    nw = (H // ws) * (W // ws)
    scores = torch.zeros(B * nw, heads, ws * ws, ws * ws)
    for b in range(B):
        for wi in range(H // ws):
            for wj in range(W // ws):
                pos = [(wi * ws + r, wj * ws + c) for r in range(ws) for c in range(ws)]
                toks = torch.stack([z[b, p[0], p[1]] for p in pos])
                q, k = toks @ Wq.T + bq, toks @ Wk.T + bk
                for h in range(heads):
                    sl = slice(h * hd, (h + 1) * hd)
                    S = q[:, sl] @ k[:, sl].T / math.sqrt(hd)
                    for i, (ri, ci) in enumerate(pos):
                        for j, (rj, cj) in enumerate(pos):
                            idx = ((ri - rj) + ws - 1) * (2 * ws - 1) + (ci - cj) + ws - 1
                            S[i, j] += a.relative_position_bias_table[idx, h]
                            if s and (region(ri, H, ws, s), region(ci, W, ws, s)) != \
                                    (region(rj, H, ws, s), region(cj, W, ws, s)):
                                S[i, j] -= 100.0
                    scores[b * nw + wi * (W // ws) + wj, h] = S
    return scores, torch.softmax(scores, -1)


@pytest.mark.parametrize("fused", [False, True])
def test_swin_windows_match_recomputation(fused):
    torch.manual_seed(13)
    model = TinySwin(fused=fused).eval()
    x = torch.randn(2, 8, 8, 16)
    with torch.no_grad():
        h1 = model.layers[0](x)
        refs = [swin_reference(model.layers[0], x), swin_reference(model.layers[1], h1)]
        plain = model(x)
    with assert_untouched(model), torch.no_grad(), capture_attention(model) as rec:
        out = model(x)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=0)
    assert rec.names == ["layers.0.attn", "layers.1.attn"]
    for m, (s, w), shift in zip(rec.maps, refs, (0, 2)):
        assert m.family == ("sdpa" if fused else "attn_drop")
        assert m.weights.shape == (2 * 4, 2, 16, 16)  # (images * windows, heads, tokens, tokens)
        assert m.windows == {"window_size": (4, 4), "shift_size": (shift, shift),
                             "resolution": (8, 8), "grid": (2, 2)}
        torch.testing.assert_close(m.weights, w, **TOL)
        assert m.scores is not None  # the softmax child's input, or SDPA's recomputation
        torch.testing.assert_close(m.scores, s, atol=1e-5, rtol=0)
    # the shifted block masks pairs across regions: window (1, 1) of image 0 has 4 regions
    w1 = rec.maps[1].weights[3]
    assert float(w1[:, 0, 15].max()) < 1e-30 and float(rec.maps[0].weights[3][:, 0, 15].min()) > 1e-6
