"""Attention rollout against closed forms and an independent per-sample numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.attention.rollout import discard, rollout
from inspect_kit.errors import OptionError


def softmax_layers(L=3, B=2, H=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(B, H, N, N, generator=g, dtype=torch.float64) * 2, -1)
            for _ in range(L)]


def np_rollout(layers, fusion="mean", ratio=0.0, policy="renormalise", residual=0.5):
    """Abnar & Zuidema, one sample at a time in numpy (row-correct, CLS->CLS never discarded)."""
    out = []
    for b in range(layers[0].shape[0]):
        N = layers[0].shape[-1]
        R = np.eye(N)
        for a in layers:
            heads = a[b].numpy()
            if policy == "clamp":
                heads = np.maximum(heads, 0)
            elif policy == "abs":
                heads = np.abs(heads)
            A = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](heads, axis=0).copy()
            k = int(N * N * ratio)
            if k:
                flat = A.reshape(-1)
                order = [i for i in np.argsort(np.abs(flat), kind="stable") if i != 0][:k]
                flat[order] = 0.0
                A = flat.reshape(N, N)
            if policy != "raw":
                for i in range(N):
                    s = np.abs(A[i]).sum()
                    A[i] = A[i] / s if s > 0 else np.eye(N)[i]
            R = ((1 - residual) * A + residual * np.eye(N)) @ R
        out.append(R)
    return np.stack(out)


def test_uniform_attention_closed_form():
    N, L = 6, 4
    u = torch.full((2, 3, N, N), 1.0 / N, dtype=torch.float64)
    r = rollout([u] * L)
    U = np.full((N, N), 1.0 / N)
    expected = U + 0.5 ** L * (np.eye(N) - U)  # U idempotent: (U/2 + I/2)^L
    np.testing.assert_allclose(r.numpy(), np.broadcast_to(expected, (2, N, N)), atol=1e-12)


def test_identity_attention_gives_identity():
    eye = torch.eye(4, dtype=torch.float64).expand(1, 2, 4, 4)
    np.testing.assert_allclose(rollout([eye, eye]).numpy()[0], np.eye(4), atol=1e-12)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
def test_matches_numpy_reference(fusion, ratio):
    layers = softmax_layers()
    r = rollout(layers, head_fusion=fusion, discard_ratio=ratio)
    np.testing.assert_allclose(r.numpy(), np_rollout(layers, fusion, ratio), atol=1e-12)
    # rows of a stochastic rollout stay stochastic
    np.testing.assert_allclose(r.sum(-1).numpy(), 1.0, atol=1e-12)


def test_policies_agree_on_softmax_attention():
    layers = softmax_layers(seed=1)
    base = rollout(layers)
    for p in ("raw", "clamp", "abs", "renormalise"):
        torch.testing.assert_close(rollout(layers, policy=p), base, atol=1e-12, rtol=0)
    for p in ("clamp", "abs", "renormalise"):
        torch.testing.assert_close(rollout(layers, policy=p, discard_ratio=0.5),
                                   rollout(layers, discard_ratio=0.5), atol=1e-12, rtol=0)


@pytest.mark.parametrize("policy", ["raw", "clamp", "abs", "renormalise"])
def test_signed_attention_policies_match_reference(policy):
    g = torch.Generator().manual_seed(2)
    layers = [torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    r = rollout(layers, softmax=False, policy=policy, discard_ratio=0.3)
    np.testing.assert_allclose(r.numpy(), np_rollout(layers, "mean", 0.3, policy), atol=1e-12)


def test_raw_policy_is_the_plain_product():
    g = torch.Generator().manual_seed(3)
    layers = [torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    a1, a2 = (0.5 * x.mean(1)[0].numpy() + 0.5 * np.eye(4) for x in layers)
    r = rollout(layers, softmax=False, policy="raw")
    np.testing.assert_allclose(r[0].numpy(), a2 @ a1, atol=1e-12)


def test_non_softmax_needs_a_policy_and_bad_options_are_named():
    layers = softmax_layers(L=2)
    with pytest.raises(OptionError, match="policy"):
        rollout(layers, softmax=[True, False])
    with pytest.raises(OptionError, match="head_fusion"):
        rollout(layers, head_fusion="median")
    with pytest.raises(OptionError, match="discard_ratio"):
        rollout(layers, discard_ratio=1.0)
    with pytest.raises(OptionError, match="policy"):
        rollout(layers, policy="softmax")
    with pytest.raises(OptionError, match="self-attention"):
        rollout([layers[0], layers[1][..., :4]])


def test_discard_keeps_cls_entry_and_counts():
    a = torch.arange(16, dtype=torch.float64).reshape(1, 4, 4) + 1
    a[0, 0, 0] = 0.001  # the smallest entry is CLS->CLS and must survive
    d = discard(a, 0.5)
    assert d[0, 0, 0] == 0.001
    assert int((d == 0).sum()) == 8
    assert torch.equal(d[d != 0].sort().values[1:], torch.arange(10, 17, dtype=torch.float64))


def test_discard_keeps_each_samples_query_entry():
    a = torch.arange(32, dtype=torch.float64).reshape(2, 4, 4) + 1
    a[0, 3, 3] = a[1, 2, 2] = 0.001  # the smallest entries are the queries' own
    d = discard(a, 0.5, query=torch.tensor([3, 2]))
    assert d[0, 3, 3] == 0.001 and d[1, 2, 2] == 0.001
    assert [int((d[b] == 0).sum()) for b in range(2)] == [8, 8]
    assert d[0, 0, 0] == 0  # CLS->CLS is not special when the query is another token


def test_non_finite_rows_pass_nothing_on_and_cls_index_is_deprecated():
    layers = softmax_layers(L=2, B=1, N=4, seed=5)
    nan_row = [x.clone() for x in layers]
    for x in nan_row:
        x[0, :, 3] = float("nan")  # token 3: a query with every key masked
    want = [x.clone() for x in layers]
    for x in want:
        x[0, :, 3] = torch.eye(4, dtype=torch.float64)[3]
    np.testing.assert_allclose(rollout(nan_row).numpy(), rollout(want).numpy(), atol=1e-15)
    with pytest.warns(FutureWarning, match="query"):
        old = rollout(layers, discard_ratio=0.5, cls_index=2)
    torch.testing.assert_close(old, rollout(layers, discard_ratio=0.5, query=2), atol=0, rtol=0)
