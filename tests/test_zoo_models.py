"""Zoo MLP and TinyViT: shapes, input forms, attention recomputed by hand, Fourier-KArAt."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.errors import ModelSpecError
from inspect_kit.hooks import capture
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build
from inspect_kit.zoo.mlp import MLP, PADE_INIT, Rational, pade_fit
from inspect_kit.zoo.vit import FourierKArAt, SoftmaxScores, TinyViT


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "silu", "prelu", "rational"])
def test_mlp_layout_and_shapes(activation):
    m = build("mlp", sizes=[64, 32, 16, 10], activation=activation, seed=3)
    assert m.sizes == (64, 32, 16, 10)
    linears = [m.layers[i] for i in (0, 2, 4)]
    assert all(isinstance(l, nn.Linear) for l in linears)
    assert [l.out_features for l in linears] == [32, 16, 10]
    x = torch.randn(7, 64)
    out = m(x)
    assert out.shape == (7, 10)
    torch.testing.assert_close(m(x.reshape(7, 1, 8, 8)), out)
    # manual recomputation of the forward pass
    h = x
    for i, lin in enumerate(linears):
        h = h @ lin.weight.T + lin.bias
        if i < 2:
            h = m.layers[2 * i + 1](h)
    torch.testing.assert_close(h, out)


def test_mlp_init_is_seeded_and_rng_free():
    state = torch.get_rng_state()
    a, b, c = MLP(seed=1), MLP(seed=1), MLP(seed=2)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)
    bound = 1 / math.sqrt(64)
    assert a.layers[0].weight.abs().max() <= bound


def test_mlp_dropout_layout():
    m = MLP(sizes=(4, 8, 2), dropout=0.5)
    assert [type(l).__name__ for l in m.layers] == ["Linear", "ReLU", "Dropout", "Linear"]
    m.eval()
    torch.testing.assert_close(m(torch.ones(2, 4)), m(torch.ones(2, 4)))


def test_rational_matches_pade_formula_and_target():
    r = Rational("tanh")
    x = torch.linspace(-3, 3, 301)
    a, b = r.numerator.detach(), r.denominator.detach().abs()
    manual = (a[0] + a[1] * x + a[2] * x**2 + a[3] * x**3) / (1 + b[0] * x.abs() + b[1] * x**2)
    torch.testing.assert_close(r(x), manual)
    assert (r(x) - torch.tanh(x)).abs().max() < 5e-3
    lrelu = Rational("leaky_relu")(x)
    ref = F.leaky_relu(x, 0.01)
    assert (lrelu - ref).abs().max() < 0.12  # worst at the kink x=0
    assert (lrelu - ref).abs()[x.abs() > 0.5].max() < 0.08
    assert sum(p.numel() for p in Rational().parameters()) == 6


@pytest.mark.slow
def test_pade_table_reproduces():
    for name, (a, b) in PADE_INIT.items():
        a2, b2 = pade_fit(name)
        assert max(abs(u - v) for u, v in zip(a + b, a2 + b2)) < 1e-4


def test_bad_mlp_specs():
    with pytest.raises(ModelSpecError, match="activation"):
        build("mlp", activation="swishy")
    with pytest.raises(ModelSpecError, match="sizes"):
        build("mlp", sizes=[64])
    with pytest.raises(ModelSpecError, match="expects 64"):
        MLP()(torch.zeros(2, 10))


@pytest.mark.parametrize("attention", ["softmax", "fourier_karat"])
def test_vit_shapes_and_input_forms(attention):
    m = build("vit", attention=attention, seed=1)
    assert m.n_patches == 16 and m.grid_shape == (4, 4)
    assert m.cls_token.shape == (1, 1, 32) and m.pos_embed.shape == (1, 17, 32)
    assert isinstance(m.blocks[0].attn.attn_fn,
                      SoftmaxScores if attention == "softmax" else FourierKArAt)
    x = torch.randn(5, 64)
    out = m(x)
    assert out.shape == (5, 10)
    torch.testing.assert_close(m(x.reshape(5, 1, 8, 8)), out)


def test_vit_patch_order_is_row_major():
    m = TinyViT()
    img = torch.arange(64.0).reshape(1, 1, 8, 8)
    p = m.patchify(img)
    assert p.shape == (1, 16, 4)
    assert p[0, 0].tolist() == [0, 1, 8, 9]
    assert p[0, 1].tolist() == [2, 3, 10, 11]
    assert p[0, 4].tolist() == [16, 17, 24, 25]


def _manual_attention(attn, x):
    """Multi-head attention recomputed head by head from the weight matrices."""
    B, N, D = x.shape
    H, hd = attn.heads, attn.head_dim
    Wq, Wk, Wv = attn.qkv.weight.split(D)
    bq, bk, bv = attn.qkv.bias.split(D)
    outs, scores_all, weights_all = [], [], []
    for h in range(H):
        sl = slice(h * hd, (h + 1) * hd)
        q = x @ Wq[sl].T + bq[sl]
        k = x @ Wk[sl].T + bk[sl]
        v = x @ Wv[sl].T + bv[sl]
        s = q @ k.transpose(1, 2) / math.sqrt(hd)
        if isinstance(attn.attn_fn, SoftmaxScores):
            w = torch.exp(s - s.max(-1, keepdim=True).values)
            w = w / w.sum(-1, keepdim=True)
        else:
            c = attn.attn_fn.coef[h]
            w = sum(c[0, g - 1] * torch.cos(g * s) + c[1, g - 1] * torch.sin(g * s)
                    for g in range(1, attn.attn_fn.grid + 1))
        scores_all.append(s)
        weights_all.append(w)
        outs.append(w @ v)
    out = torch.cat(outs, -1) @ attn.proj.weight.T + attn.proj.bias
    return out, torch.stack(scores_all, 1), torch.stack(weights_all, 1)


@pytest.mark.parametrize("attention", ["softmax", "fourier_karat"])
def test_vit_attention_equals_manual_recomputation_and_hooks(attention):
    m = build("vit", attention=attention, seed=2).eval()
    x = torch.randn(3, 64)
    if attention == "fourier_karat":
        with torch.no_grad():
            m.blocks[0].attn.attn_fn.coef.add_(0.1)  # away from the init pattern
    with torch.no_grad():
        tokens = torch.cat([m.cls_token.expand(3, -1, -1), m.patch_embed(m.patchify(x))], 1)
        h = tokens + m.pos_embed
        attn = m.blocks[0].attn
        ref_out, ref_s, ref_w = _manual_attention(attn, m.blocks[0].norm1(h))
        torch.testing.assert_close(attn(m.blocks[0].norm1(h)), ref_out, atol=1e-5, rtol=1e-5)
    with assert_untouched(m), capture(m, "*.attn_fn", inputs=True) as rec:
        m(x)
    s, w = rec.input("blocks.0.attn.attn_fn"), rec.output("blocks.0.attn.attn_fn")
    s = s[0] if isinstance(s, (tuple, list)) else s
    assert s.shape == w.shape == (3, 4, 17, 17)
    torch.testing.assert_close(s, ref_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-5)
    if attention == "softmax":
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 17))


def test_fourier_karat_function_matches_module():
    f = FourierKArAt(heads=3, grid=4, generator=torch.Generator().manual_seed(0))
    assert f.coef.shape == (3, 2, 4)
    s = torch.randn(2, 3, 5, 5) * 2
    w = f(s)
    for h in range(3):
        torch.testing.assert_close(f.function(h, s[:, h]), w[:, h])
        # closed form at s = pi/2: cos(g pi/2), sin(g pi/2) pattern
        c = f.coef[h].detach()
        val = sum(c[0, g - 1] * math.cos(g * math.pi / 2) + c[1, g - 1] * math.sin(g * math.pi / 2)
                  for g in range(1, 5))
        assert f.function(h, torch.tensor([math.pi / 2])).item() == pytest.approx(float(val),
                                                                                  abs=1e-6)
    # the initial function increases with the score near 0 (attention-like ordering)
    grid = torch.linspace(-1, 1, 21)
    assert torch.all(f.function(0, grid).diff() > 0)
    with pytest.raises(ModelSpecError):
        f.function(3, s)


def test_vit_seeded_rng_free_and_bad_specs():
    state = torch.get_rng_state()
    a, b = TinyViT(seed=5, attention="fourier_karat"), TinyViT(seed=5, attention="fourier_karat")
    assert torch.equal(state, torch.get_rng_state())
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k
    with pytest.raises(ModelSpecError, match="attention"):
        build("vit", attention="linear")
    with pytest.raises(ModelSpecError, match="divisible"):
        build("vit", dim=30, heads=4)
    with pytest.raises(ModelSpecError, match="8x8"):
        TinyViT()(torch.zeros(2, 10))
