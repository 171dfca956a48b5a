"""Attention statistics on maps that tell the axes apart, against loops written in numpy.

Every input here differs per head, per input and per query; the numbers of inputs, heads and
queries differ from each other (so a statistic reduced over the wrong axis has the wrong
shape, asserted explicitly, instead of broadcasting); grids are not square; masks hide the
extreme values. Then the same quantities through ``attention()`` on a Fourier-KArAt ViT
(signed, non-softmax attention) against the explicit head-by-head reference forward, with
rollout under a policy, a head fusion and a discard ratio.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analyses.attention import stats
from analyses.attention.api import attention
from inspect_kit import zoo
from inspect_kit.testing import assert_untouched
from tests.test_attention_capture_models import vit_reference

B, H = 3, 2  # inputs and heads differ in number


def _maps(N: int, seed: int = 0, signed: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, H, N, N, generator=g, dtype=torch.float64) * \
        torch.tensor([1.0, 3.0], dtype=torch.float64).reshape(1, H, 1, 1)
    a = torch.softmax(s, -1)
    return a - 0.3 * a.mean() if signed else a


def _positions(h: int, w: int) -> np.ndarray:
    return np.array([(r, c) for r in range(h) for c in range(w)], dtype=float)


def test_attention_distance_on_non_uniform_maps_of_a_non_square_grid():
    h, w, prefix = 3, 4, 1
    pos = _positions(h, w)
    # head 0 looks far (scores grow with distance), head 1 near; noise per input and query
    dist = torch.zeros(prefix + h * w, prefix + h * w, dtype=torch.float64)
    dist[prefix:, prefix:] = torch.cdist(torch.from_numpy(pos), torch.from_numpy(pos))
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(B, H, prefix + h * w, prefix + h * w, generator=g, dtype=torch.float64)
    scores = scores + torch.tensor([0.8, -1.5], dtype=torch.float64).reshape(1, H, 1, 1) * dist
    a = torch.softmax(scores, -1)
    got = stats.attention_distance(a, (h, w), prefix)
    assert got.shape == (H,)
    want = np.zeros(H)
    for head in range(H):
        vals = []
        for b in range(B):
            m = a[b, head, prefix:, prefix:].numpy()
            for q in range(h * w):
                d = np.linalg.norm(pos - pos[q], axis=1)
                vals.append((m[q] * d).sum() / m[q].sum())
        want[head] = np.mean(vals)
    assert want[0] > want[1] + 0.5
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


def test_row_statistics_are_per_head_on_signed_maps():
    N = 5
    a = _maps(N, seed=2, signed=True)
    ent, neg_mass = stats.entropy(a), stats.negative_mass(a)
    neg_frac, dev = stats.negative_fraction(a), stats.row_sum_deviation(a)
    tok = stats.token_distance(a)
    for t in (ent, neg_mass, neg_frac, dev, tok):
        assert t.shape == (H,)
    x = a.numpy()
    idx = np.arange(N)
    for head in range(H):
        rows = x[:, head].reshape(-1, N)  # every input's every query
        p = np.abs(rows) / np.abs(rows).sum(1, keepdims=True)
        np.testing.assert_allclose(ent[head], np.mean(-(p * np.log(p)).sum(1)), atol=1e-12)
        np.testing.assert_allclose(neg_mass[head], np.abs(rows[rows < 0]).sum() / np.abs(rows).sum(),
                                   atol=1e-12)
        np.testing.assert_allclose(neg_frac[head], np.mean(rows < 0), atol=1e-12)
        np.testing.assert_allclose(dev[head], np.mean(np.abs(rows.sum(1) - 1)), atol=1e-12)
        dist = [(np.abs(x[b, head, q]) * np.abs(idx - q)).sum() / np.abs(x[b, head, q]).sum()
                for b in range(B) for q in range(N)]
        np.testing.assert_allclose(tok[head], np.mean(dist), atol=1e-12)
    assert abs(float(ent[0] - ent[1])) > 0.1 and float(neg_frac.min()) > 0


def test_score_range_and_spectrum_leave_padding_out():
    N = 6
    g = torch.Generator().manual_seed(3)
    s = torch.randn(B, H, N, N, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 5 + [False]])
    s[1, :, 4, 0] = 50.0   # a padding query holds the largest score of every head
    s[2, :, 0, 5] = -50.0  # a padding key holds the smallest
    s[0, 1, 2, 3] = -math.inf  # a masked entry of a real query
    got = stats.score_range(s, mask)
    assert got.shape == (H, 2)
    for head in range(H):
        vals = [s[b, head, q, k].item() for b in range(B) for q in range(N) for k in range(N)
                if mask[b, q] and mask[b, k] and math.isfinite(s[b, head, q, k].item())]
        np.testing.assert_allclose(got[head].numpy(), [min(vals), max(vals)], atol=0)
    assert float(got[:, 1].max()) < 50 and float(got[:, 0].min()) > -50

    a = _maps(N, seed=4)
    spec = stats.spectrum_summary(a, mask)
    assert spec.shape == (3, H, N)
    per_input = np.zeros((B, H, N))
    for b in range(B):
        real = mask[b].numpy()
        for head in range(H):
            m = np.zeros((N, N))
            m[np.ix_(real, real)] = a[b, head].numpy()[np.ix_(real, real)]
            per_input[b, head] = np.linalg.svd(m, compute_uv=False)
    np.testing.assert_allclose(spec[0].numpy(), per_input.min(0), atol=1e-12)
    np.testing.assert_allclose(spec[1].numpy(), per_input.mean(0), atol=1e-12)
    np.testing.assert_allclose(spec[2].numpy(), per_input.max(0), atol=1e-12)
    assert np.abs(per_input[:, 0] - per_input[:, 1]).max() > 1e-2  # heads differ


def _np_rollout(weights: list[np.ndarray], b: int, ratio: float, fusion: str) -> np.ndarray:
    """Abnar & Zuidema for one input, clamp policy, CLS->CLS kept (see rollout.py)."""
    N = weights[0].shape[-1]
    R = np.eye(N)
    for w in weights:
        A = {"mean": np.mean, "max": np.max}[fusion](np.maximum(w[b], 0), axis=0).copy()
        k = int(N * N * ratio)
        flat = A.reshape(-1)
        order = [i for i in np.argsort(np.abs(flat), kind="stable") if i != 0][:k]
        flat[order] = 0.0
        A = flat.reshape(N, N)
        s = np.abs(A).sum(1, keepdims=True)
        A = np.where(s > 0, A / np.where(s > 0, s, 1), np.eye(N))
        R = (0.5 * A + 0.5 * np.eye(N)) @ R
    return R


@pytest.fixture(scope="module")
def karat():
    model = zoo.build("vit", attention="fourier_karat", seed=3)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.attn_fn.coef.add_(torch.randn(blk.attn.attn_fn.coef.shape, generator=g) * 0.3)
    return model


@pytest.mark.parametrize("fusion", ["mean", "max"])
def test_karat_vit_statistics_and_rollout_through_the_api(karat, digits, fusion):
    x, y = digits.x_train[:12], digits.y_train[:12]
    with assert_untouched(karat):
        res = attention(karat, (x, y), index=5, samples=None, policy="clamp",
                        head_fusion=fusion, discard_ratio=0.5)
    with torch.no_grad():
        ref = vit_reference(karat, x)
    heads = karat.blocks[0].attn.heads
    pos = _positions(4, 4)
    for lay, (s, w) in zip(res.layers, ref):
        w, s = w.double(), s.double()
        assert lay.shape == (12, heads, 17, 17)
        assert lay.score_range.shape == (heads, 2) and lay.distance.shape == (heads,)
        np.testing.assert_allclose(lay.score_range[:, 1], s.amax((0, 2, 3)).numpy(), atol=1e-5)
        np.testing.assert_allclose(lay.score_range[:, 0], s.amin((0, 2, 3)).numpy(), atol=1e-5)
        m = w[:, :, 1:, 1:].abs().numpy()  # patch queries and keys, |A|
        d = np.linalg.norm(pos[:, None] - pos[None, :], axis=-1)
        want = ((m * d).sum(-1) / m.sum(-1)).mean((0, 2))
        np.testing.assert_allclose(lay.distance, want, atol=1e-5)
        sv = np.linalg.svd(w.numpy(), compute_uv=False)  # (12, heads, 17)
        assert lay.spectrum.shape == (3, heads, 17)
        np.testing.assert_allclose(lay.spectrum[2], sv.max(0), atol=1e-5)
        np.testing.assert_allclose(lay.spectrum[1], sv.mean(0), atol=1e-5)
    weights = [w.double().numpy() for _, w in ref]
    R = _np_rollout(weights, 5, 0.5, fusion)
    assert res.rollout["map"].shape == (4, 4)
    np.testing.assert_allclose(res.rollout["map"], R[0, 1:].reshape(4, 4), atol=1e-6)
    mean_map = np.mean([_np_rollout(weights, b, 0.5, fusion)[0, 1:] for b in range(12)], 0)
    np.testing.assert_allclose(res.rollout["mean_map"], mean_map.reshape(4, 4), atol=1e-6)
