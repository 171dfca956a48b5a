"""Per-head attention statistics against closed forms and numpy."""

from __future__ import annotations

import math

import numpy as np
import torch

from analyses.attention import stats


def test_entropy_uniform_and_one_hot():
    K = 7
    u = torch.full((2, 3, 4, K), 1.0 / K)
    np.testing.assert_allclose(stats.entropy(u).numpy(), math.log(K), atol=1e-12)
    one = torch.zeros(2, 3, 4, K)
    one[..., 2] = 1.0
    np.testing.assert_allclose(stats.entropy(one).numpy(), 0.0, atol=1e-12)


def test_entropy_of_signed_rows_uses_absolute_values():
    a = torch.tensor([[[[-1.0, 1.0, 2.0]]]])
    p = np.array([0.25, 0.25, 0.5])
    np.testing.assert_allclose(stats.entropy(a).numpy(), [-(p * np.log(p)).sum()], atol=1e-12)


def test_entropy_ignores_fully_masked_rows():
    a = torch.full((1, 1, 2, 4), 0.25)
    a[0, 0, 1] = math.nan
    np.testing.assert_allclose(stats.entropy(a).numpy(), [math.log(4)], atol=1e-12)


def test_distance_closed_forms():
    # uniform attention over a 2x2 grid: distances 0, 1, 1, sqrt(2) from every patch
    a = torch.full((1, 2, 5, 5), 0.2)
    np.testing.assert_allclose(stats.attention_distance(a, (2, 2), 1).numpy(),
                               (2 + math.sqrt(2)) / 4, atol=1e-12)
    # every patch of a 3x4 grid attends only to patch (0, 0): mean of |pos|
    a = torch.zeros(2, 1, 13, 13)
    a[:, :, :, 1] = 1.0
    want = np.mean([math.hypot(r, c) for r in range(3) for c in range(4)])
    np.testing.assert_allclose(stats.attention_distance(a, (3, 4), 1).numpy(), want, atol=1e-12)


def test_negative_mass_fraction_and_row_sum_deviation():
    a = torch.tensor([[[[0.5, -0.5, 2.0], [1.0, 0.0, 0.0]]]])
    np.testing.assert_allclose(stats.negative_mass(a).numpy(), [0.5 / 4.0], atol=1e-12)
    np.testing.assert_allclose(stats.negative_fraction(a).numpy(), [1 / 6], atol=1e-12)
    np.testing.assert_allclose(stats.row_sum_deviation(a).numpy(), [0.5], atol=1e-12)
    sm = torch.softmax(torch.randn(2, 3, 4, 4), -1)
    assert stats.negative_mass(sm).max() == 0
    assert stats.row_sum_deviation(sm).max() < 1e-6


def test_singular_values_match_numpy_and_nan_for_masked():
    a = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    s = stats.singular_values(a).numpy()
    np.testing.assert_allclose(s, np.linalg.svd(a.numpy(), compute_uv=False), atol=1e-12)
    a[0, 1, 0, 0] = -math.inf
    s2 = stats.singular_values(a)
    assert torch.isnan(s2[0, 1]).all() and torch.isfinite(s2[1]).all()
    summ = stats.spectrum_summary(a).numpy()
    np.testing.assert_allclose(summ[1, 1], s[1, 1], atol=1e-12)  # head 1: only image 1 finite
    np.testing.assert_allclose(summ[0, 0], np.minimum(s[0, 0], s[1, 0]), atol=1e-12)


def test_score_range_skips_infinite():
    s = torch.tensor([[[[1.0, -math.inf], [3.0, -2.0]]], [[[0.5, 4.0], [0.0, 0.0]]]])
    np.testing.assert_allclose(stats.score_range(s).numpy(), [[-2.0, 4.0]])


def test_cls_maps_and_layout():
    a = torch.arange(2 * 17 * 17, dtype=torch.float64).reshape(1, 2, 17, 17)
    m = stats.cls_maps(a, 1, 0, (4, 4))
    assert m.shape == (1, 2, 4, 4) and m[0, 1, 0, 1] == a[0, 1, 0, 2] and m[0, 0, 1, 0] == a[0, 0, 0, 5]
    assert stats.infer_layout(17) == (1, (4, 4))
    assert stats.infer_layout(16) == (0, (4, 4))
    assert stats.infer_layout(7) == (0, None)
    assert stats.infer_layout(18, prefix=2) == (2, (4, 4))


def test_masked_statistics_on_random_maps_match_loops():
    # different per head and per input; input 1 has two padding tokens (keys and queries)
    g = torch.Generator().manual_seed(4)
    a = torch.softmax(torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64) * 2, -1)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    ent = np.zeros(3)
    dist = np.zeros(3)
    neg = stats.negative_fraction(a - 0.1, mask).numpy()
    neg_want = np.zeros(3)
    for h in range(3):
        es, ds, cnt, tot = [], [], 0, 0
        for b in range(2):
            real = mask[b].numpy()
            for q in np.nonzero(real)[0]:
                p = a[b, h, q].numpy()[real]
                cnt += int(((p - 0.1) < 0).sum())
                tot += len(p)
                p = p / p.sum()
                es.append(-(p * np.log(p)).sum())
                ds.append((p * np.abs(np.nonzero(real)[0] - q)).sum())
        ent[h], dist[h], neg_want[h] = np.mean(es), np.mean(ds), cnt / tot
    assert np.ptp(ent) > 0.01
    np.testing.assert_allclose(stats.entropy(a, mask).numpy(), ent, atol=1e-12)
    np.testing.assert_allclose(stats.token_distance(a, mask).numpy(), dist, atol=1e-12)
    np.testing.assert_allclose(neg, neg_want, atol=1e-12)
    # without the mask, padding counts: the numbers change
    assert np.abs(stats.entropy(a).numpy() - ent).max() > 1e-3
