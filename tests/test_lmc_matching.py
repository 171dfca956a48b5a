"""Weight and activation matching against independent truths: a randomly permuted copy is
recovered exactly, and on a one-hidden-layer net weight matching equals brute-force search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from analyses.lmc.api import align, lmc
from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec
from analyses.lmc.weight_matching import weight_matching
from inspect_kit import zoo
from inspect_kit.testing import assert_untouched


def _scrambled(model, x, seed=5):
    spec = permutation_spec(model, x[:4])
    perms = spec.random(seed)
    return load_state_copy(model, spec.apply(model_state(model), perms)), perms


@pytest.mark.parametrize("method", ["weights", "activations"])
@pytest.mark.parametrize("name,kwargs,n_in", [
    ("mlp", dict(sizes=(8, 16, 12, 3)), 8),
    ("kan", dict(width=[3, 5, 4, 2]), 3),
    ("vit", dict(dim=24, depth=1, heads=4), 64),
])
def test_permuted_copy_is_recovered_exactly(method, name, kwargs, n_in):
    a = zoo.build(name, seed=0, **kwargs).eval()
    x = torch.rand(64, n_in) * 2 - 1
    b, scramble = _scrambled(a, x)
    assert any(not torch.equal(p, q) for p, q in zip(model_state(a).values(),
                                                     model_state(b).values()))
    with assert_untouched(a), assert_untouched(b):
        res = align(a, b, method, data=(x, torch.zeros(len(x), dtype=torch.long)))
    for s, m in zip(scramble, res.perms):  # B[i] = A[s[i]], B'[i] = B[m[i]]: s o m = identity
        assert torch.equal(s[m], torch.arange(len(s)))
    for n, t in model_state(a).items():  # the aligned copy of B *is* A again
        torch.testing.assert_close(model_state(res.model)[n], t, atol=0, rtol=0, msg=n)
    assert res.max_abs_delta_logit < 1e-5
    assert res.fraction_moved > 0.5


def test_recovered_pair_has_zero_barrier(digits):
    a = zoo.build("mlp", sizes=(64, 32, 10), seed=0)
    b, _ = _scrambled(a, digits.x_train)
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, digits, matching="weights", steps=5, split="both")
    naive = np.asarray(res.curves["naive"]["loss"]["train"])
    assert np.ptp(naive) > 1e-3  # the unaligned path leaves the function's level set
    for split in ("train", "test"):
        loss = np.asarray(res.loss[split])
        assert np.ptp(loss) < 1e-6  # aligned path: the same network at every t
        assert abs(res.barrier_mean["loss"][split]) < 1e-6
        assert abs(res.barrier_linear["loss"][split]) < 1e-6
    assert min(res.aligned["identity_fraction"]) < 0.5  # B really was scrambled


def test_weight_matching_equals_brute_force_on_one_hidden_layer():
    torch.manual_seed(3)
    a = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    sa, sb = model_state(a), model_state(b)
    spec = permutation_spec(a, torch.randn(4, 3))
    perms, _ = weight_matching(spec, sa, sb)

    def score(p):
        p = list(p)
        return float((sa["0.weight"] * sb["0.weight"][p]).sum() + (sa["0.bias"] * sb["0.bias"][p]).sum()
                     + (sa["2.weight"] * sb["2.weight"][:, p]).sum())

    best = max(itertools.permutations(range(5)), key=score)
    assert perms[0].tolist() == list(best)


def test_weight_matching_never_lowers_the_objective():
    a = zoo.build("mlp", sizes=(6, 9, 9, 9, 2), seed=0)
    b = zoo.build("mlp", sizes=(6, 9, 9, 9, 2), seed=1)
    sa, sb = model_state(a), model_state(b)
    spec = permutation_spec(a, torch.randn(4, 6))
    perms, sweeps = weight_matching(spec, sa, sb, seed=2)

    def obj(state):
        return sum(float((sa[n] * state[n]).sum()) for n in sa)

    assert obj(spec.apply(sb, perms)) > obj(sb)
    assert sweeps >= 1
    again, _ = weight_matching(spec, sa, sb, seed=2)  # seeded: reproducible
    assert all(torch.equal(p, q) for p, q in zip(perms, again))


def test_trained_pair_barrier_drops(digits):
    from inspect_kit.zoo.train import fit

    models = []
    for s in (1, 2):
        m = zoo.build("mlp", sizes=(64, 64, 10), seed=s)
        fit(m, digits, epochs=6, seed=s, progress=False)
        models.append(m)
    with assert_untouched(models[0]), assert_untouched(models[1]):
        res = lmc(models[0], models[1], digits, matching="weights", steps=9, refine=False)
    naive = res.curves["naive"]["barrier_mean"]["loss"]["train"]
    assert res.barrier_mean["loss"]["train"] < 0.5 * naive
    assert np.isfinite(res.aligned["max_abs_delta_logit"])
