"""attention() on timm-structured models: Swin windows reported per window with their layout,
timm ViT blocks on both fused_attn paths, and the error when nothing is captured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses.attention.api import attention
from analyses.attention.result import AttentionResult
from inspect_kit.errors import OptionError, UnsupportedModelError
from inspect_kit.testing import assert_untouched
from tests.test_attention_timm import (
    TimmViTBlocks,
    TinySwin,
    swin_reference,
    timm_reference,
    window_reverse,
)


def swin_data(n=3):
    g = torch.Generator().manual_seed(5)
    return torch.randn(n, 8, 8, 16, generator=g), torch.tensor([0, 1, 0])[:n]


@pytest.mark.parametrize("fused", [False, True])
def test_swin_reported_per_window(fused):
    torch.manual_seed(14)
    model = TinySwin(fused=fused).eval()
    x, y = swin_data()
    with assert_untouched(model):
        res = attention(model, (x, y), index=2)
    with torch.no_grad():
        refs = [swin_reference(model.layers[0], x)[1],
                swin_reference(model.layers[1], model.layers[0](x))[1]]
    assert res.rollout is None and "windowed" in res.provenance["rollout"]
    assert res.kind == "image" and res.grid is None and res.seq_len == 16
    for lay, w, blk in zip(res.layers, refs, model.layers):
        assert lay.shape == (12, 2, 16, 16) and lay.query_attention is None
        assert lay.windows == {"window_size": (4, 4), "shift_size": blk.shift_size,
                               "resolution": (8, 8), "grid": (2, 2), "count": 4}
        w = w.double()
        # per window and head: mean row entropy over the 3 inputs and 16 queries
        per = w.reshape(3, 4, 2, 16, 16)
        ent = -torch.special.xlogy(per, per).sum(-1).mean((0, 3))  # (windows, heads)
        assert lay.window_entropy.shape == (4, 2)
        np.testing.assert_allclose(lay.window_entropy, ent.numpy(), atol=1e-6)
        np.testing.assert_allclose(lay.entropy, ent.mean(0).numpy(), atol=1e-6)
        # distance inside the 4 x 4 window, in window cells
        pos = torch.tensor([(r, c) for r in range(4) for c in range(4)], dtype=torch.float64)
        d = torch.cdist(pos, pos)
        np.testing.assert_allclose(lay.distance, (w * d).sum(-1).mean((0, 2)).numpy(), atol=1e-6)
        # the map of input 2, put back with the model's own window_reverse and roll
        received = w[2 * 4:3 * 4].mean(-2)  # (windows, heads, tokens)
        img = window_reverse(received.permute(0, 2, 1).reshape(4, 4, 4, 2), (4, 4), 8, 8)[0]
        img = torch.roll(img, shifts=blk.shift_size, dims=(0, 1)).permute(2, 0, 1)
        assert lay.window_map.shape == (2, 8, 8)
        np.testing.assert_allclose(lay.window_map, img.numpy(), atol=1e-6)
    assert res.wide_frame()["windows"].tolist() == [4] * 4


def test_swin_rollout_true_is_an_option_error_and_json_round_trip(tmp_path):
    model = TinySwin().eval()
    with pytest.raises(OptionError, match="windowed"):
        attention(model, swin_data(), rollout=True)
    res = attention(model, swin_data())
    res.save(tmp_path / "s.json")
    back = AttentionResult.load(tmp_path / "s.json")
    assert back.to_dict() == res.to_dict() and back.layers[1].windows["shift_size"] == (2, 2)


def test_timm_vit_blocks_same_result_on_both_paths():
    torch.manual_seed(15)
    model = TimmViTBlocks().eval()
    x = torch.randn(4, 17, 32)  # CLS + 16 tokens, (B, N, C): a sequence to the kit
    data = (x, torch.zeros(4, dtype=torch.long))
    results = []
    for fused in (True, False):
        model.set_fused(fused)
        try:
            with assert_untouched(model):
                results.append(attention(model, data, index=1))
        finally:
            model.set_fused(True)
    a, b = results
    assert [lay.family for lay in a.layers] == ["sdpa"] * 2
    assert [lay.family for lay in b.layers] == ["attn_drop"] * 2
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.entropy, lb.entropy, atol=1e-6)
        np.testing.assert_allclose(la.query_attention, lb.query_attention, atol=1e-6)
    np.testing.assert_allclose(a.rollout["map"], b.rollout["map"], atol=1e-6)
    # with the grid given, the same tokens are an image: CLS + 4 x 4 patches
    img = attention(model, data, grid=(4, 4), index=1)
    assert img.kind == "image" and img.prefix_tokens == 1 and img.grid == (4, 4)
    assert img.rollout["map"].shape == (4, 4)
    np.testing.assert_allclose(img.rollout["map"].reshape(-1), a.rollout["map"][1:], atol=1e-12)
    with torch.no_grad():
        ref = [w.double() for w in timm_reference(model, x)]
    pos = torch.tensor([(r, c) for r in range(4) for c in range(4)], dtype=torch.float64)
    idx = torch.arange(17, dtype=torch.float64)
    for w, seq, im in zip(ref, a.layers, img.layers):
        p = w[..., 1:, 1:] / w[..., 1:, 1:].sum(-1, keepdim=True)  # patch queries and keys
        want = (p * torch.cdist(pos, pos)).sum(-1).mean((0, 2))
        np.testing.assert_allclose(im.distance, want.numpy(), atol=1e-6)
        tok = (w * (idx[:, None] - idx[None, :]).abs()).sum(-1).mean((0, 2))
        np.testing.assert_allclose(seq.distance, tok.numpy(), atol=1e-6)
        assert im.query_attention.shape == (4, 4, 4)
        np.testing.assert_allclose(im.query_attention, w[1, :, 0, 1:].reshape(4, 4, 4).numpy(),
                                   atol=1e-6)


class NoAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.attn_drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.attn_drop(self.lin(x).unsqueeze(1)).squeeze(1)


def test_no_attention_error_names_what_the_kit_records_not_patch_modules():
    with pytest.raises(UnsupportedModelError) as err:
        attention(NoAttention(), (torch.randn(4, 8), torch.zeros(4, dtype=torch.long)))
    msg = str(err.value)
    assert "no attention was captured" in msg and "attn_drop" in msg
    assert "not a row softmax" in msg and "patch_modules" not in msg
    assert "\n" not in msg
