"""LMC against truths built in the test: barriers on points out of order, and matching of two
independently trained networks against an exact assignment solver on a cost matrix (weights) or
a cross-correlation (activations) written out by hand.

For one hidden layer there is one permutation group, so weight matching maximises
``<W1_A, P W1_B> + <b1_A, P b1_B> + <W2_A, W2_B P^T>`` over permutations ``P``: a single linear
assignment problem whose cost is ``W1_A W1_B^T + b1_A b1_B^T + W2_A^T W2_B`` (Ainsworth et al.
2023, Eq. 3), solved exactly by ``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from analyses.lmc.api import align, lmc
from analyses.lmc.interpolate import barrier_linear, barrier_mean
from inspect_kit.testing import assert_untouched


def _by_hand(t: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Both barriers from the points sorted by t (the values at t = 0 and t = 1 by lookup)."""
    order = np.argsort(t)
    t, v = t[order], v[order]
    l0, l1 = v[t == 0.0][0], v[t == 1.0][0]
    return float(v.max() - 0.5 * (l0 + l1)), float(np.max(v - ((1 - t) * l0 + t * l1)))


def test_barriers_of_points_out_of_order():
    t = np.array([0.5, 1.0, 0.125, 0.0, 0.75, 0.3125, 0.25, 0.9])  # refined points, uneven
    v = np.array([2.6, 1.9, 1.2, 0.4, 2.2, 2.0, 1.5, 1.1])
    # neither the first nor the last element is an endpoint
    assert t[0] not in (0.0, 1.0) and t[-1] not in (0.0, 1.0)
    mean, lin = _by_hand(t, v)
    assert mean == pytest.approx(2.6 - 0.5 * (0.4 + 1.9))
    assert lin == pytest.approx(2.6 - (0.5 * 0.4 + 0.5 * 1.9))
    assert barrier_mean(t, v) == pytest.approx(mean, abs=1e-12)
    assert barrier_linear(t, v) == pytest.approx(lin, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):  # any order gives the same numbers
        p = rng.permutation(len(t))
        assert barrier_mean(t[p], v[p]) == pytest.approx(mean, abs=1e-12)
        assert barrier_linear(t[p], v[p]) == pytest.approx(lin, abs=1e-12)


def _train(seed: int, x: torch.Tensor, y: torch.Tensor, hidden: int = 24) -> nn.Module:
    """A one-hidden-layer ReLU net trained with its own seed (initialisation and batch order);
    hidden biases start in [-2, 2] so that they weigh in the matching cost."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    with torch.no_grad():
        net[0].bias.uniform_(-2.0, 2.0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 50):
            b = perm[i:i + 50]
            opt.zero_grad()
            F.cross_entropy(net(x[b]), y[b]).backward()
            opt.step()
    net.zero_grad(set_to_none=True)
    return net.eval()


@pytest.fixture(scope="module")
def pair(digits):
    x, y = digits.x_train[:600], digits.y_train[:600]
    return _train(1, x, y), _train(2, x, y), (x, y)


def _weights(net: nn.Module) -> tuple[np.ndarray, ...]:
    return tuple(p.detach().double().numpy() for p in (net[0].weight, net[0].bias, net[2].weight))


def test_weight_matching_of_trained_nets_equals_the_exact_assignment(pair):
    a, b, data = pair
    (w1a, b1a, w2a), (w1b, b1b, w2b) = _weights(a), _weights(b)
    cost = w1a @ w1b.T + np.outer(b1a, b1b) + w2a.T @ w2b
    assert cost.shape == (24, 24)
    _, best = linear_sum_assignment(cost, maximize=True)
    # the bias term matters here: without it the assignment differs (a discriminating case)
    _, no_bias = linear_sum_assignment(w1a @ w1b.T + w2a.T @ w2b, maximize=True)
    assert not np.array_equal(best, no_bias)
    with assert_untouched(a), assert_untouched(b):
        res = align(a, b, "weights", data=data)
    assert len(res.perms) == 1 and res.perms[0].shape == (24,)
    np.testing.assert_array_equal(res.perms[0].numpy(), best)
    # the aligned copy is B with its hidden units reordered by hand
    moved = res.model
    torch.testing.assert_close(moved[0].weight, b[0].weight[best], atol=0, rtol=0)
    torch.testing.assert_close(moved[0].bias, b[0].bias[best], atol=0, rtol=0)
    torch.testing.assert_close(moved[2].weight, b[2].weight[:, best], atol=0, rtol=0)
    torch.testing.assert_close(moved[2].bias, b[2].bias, atol=0, rtol=0)


def test_activation_matching_of_trained_nets_equals_the_exact_assignment(pair):
    a, b, (x, y) = pair
    with torch.no_grad():
        za = torch.relu(x.double() @ a[0].weight.double().T + a[0].bias.double()).numpy()
        zb = torch.relu(x.double() @ b[0].weight.double().T + b[0].bias.double()).numpy()
    corr = za.T @ zb / len(x)
    _, best = linear_sum_assignment(corr, maximize=True)
    assert len(set(best.tolist())) == 24 and not np.array_equal(best, np.arange(24))
    with assert_untouched(a), assert_untouched(b):
        res = align(a, b, "activations", data=(x, y))
    np.testing.assert_array_equal(res.perms[0].numpy(), best)


def test_matched_lmc_curve_equals_plain_forwards_of_the_hand_permuted_average(pair):
    a, b, (x, y) = pair
    (w1a, b1a, w2a), (w1b, b1b, w2b) = _weights(a), _weights(b)
    _, best = linear_sum_assignment(w1a @ w1b.T + np.outer(b1a, b1b) + w2a.T @ w2b,
                                    maximize=True)
    b_perm = copy.deepcopy(b)
    with torch.no_grad():
        b_perm[0].weight.copy_(b[0].weight[best])
        b_perm[0].bias.copy_(b[0].bias[best])
        b_perm[2].weight.copy_(b[2].weight[:, best])
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, (x, y), matching="weights", steps=5, refine=False, progress=False)
    t = np.asarray(res.t)
    assert t.shape == (5,)
    want = []
    for ti in t:
        mid = copy.deepcopy(a)
        with torch.no_grad():
            for p, q in zip(mid.parameters(), b_perm.parameters()):
                p.mul_(1 - ti).add_(ti * q)
            want.append(float(F.cross_entropy(mid(x), y)))
    np.testing.assert_allclose(res.loss["data"], want, rtol=1e-5, atol=1e-6)
    mean, lin = _by_hand(t, np.asarray(want))
    assert res.barrier_mean["loss"]["data"] == pytest.approx(mean, abs=1e-5)
    assert res.barrier_linear["loss"]["data"] == pytest.approx(lin, abs=1e-5)
    naive = res.curves["naive"]["barrier_mean"]["loss"]["data"]
    assert res.barrier_mean["loss"]["data"] < naive  # matching lowers the barrier
