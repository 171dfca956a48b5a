"""Weight and activation matching on CNNs and a torchvision-structured ResNet-18: a scrambled copy
is recovered exactly (zero barrier), the one-group objective equals scipy's assignment on a
cost matrix built by hand, and on a briefly trained pair matching + REPAIR beats the plain path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from analyses.lmc.api import align, lmc
from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec
from analyses.lmc.weight_matching import matching_state, weight_matching
from inspect_kit.testing import assert_untouched
from tests.resnet_fixture import ConvBNPool, digits_images, randomize_batchnorm, resnet18


def _scrambled(model, x, seed=5):
    spec = permutation_spec(model, x[:2])
    perms = spec.random(seed)
    return load_state_copy(model, spec.apply(model_state(model), perms)), perms


def _model(kind):
    torch.manual_seed(0)
    m = resnet18(num_classes=10, width=4, in_channels=1) if kind == "resnet" else ConvBNPool()
    return randomize_batchnorm(m).eval()


def _alive(model, spec, x):
    """Per group: units whose activation at the group's witness is nonzero somewhere on ``x``
    (a dead ReLU unit is all zeros in both models: activation matching cannot place it)."""
    seen, mods = {}, dict(model.named_modules())

    def keep(name):
        return lambda _m, _i, o: seen.setdefault(name, []).append(o.detach().clone())

    handles = [mods[g.witness[0]].register_forward_hook(keep(g.witness[0])) for g in spec.groups]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    out = []
    for g in spec.groups:
        z = seen[g.witness[0]][g.witness_call].movedim(g.witness[1], -1)
        out.append(z.reshape(-1, g.size).abs().sum(0) > 0)
    return out


@pytest.mark.parametrize("method", ["weights", "activations"])
@pytest.mark.parametrize("kind", ["resnet", "cnn"])
def test_scrambled_copy_is_recovered_exactly(method, kind):
    a = _model(kind)
    x = torch.randn(64, 1, 16, 16)
    b, scramble = _scrambled(a, x)
    with assert_untouched(a), assert_untouched(b):
        res = align(a, b, method, data=(x, torch.zeros(len(x), dtype=torch.long)))
    assert res.max_abs_delta_logit < 1e-5
    if method == "activations":  # every live unit back in place; A's function on the data
        spec = permutation_spec(a, x[:2])
        for s, m, live in zip(scramble, res.perms, _alive(a, spec, x)):
            assert torch.equal(s[m][live], torch.arange(len(s))[live])
        with torch.no_grad():
            torch.testing.assert_close(res.model(x), a(x), atol=1e-5, rtol=1e-5)
        return
    for s, m in zip(scramble, res.perms):  # B[i] = A[s[i]], B'[i] = B[m[i]]: s o m = identity
        assert torch.equal(s[m], torch.arange(len(s)))
    for n, t in model_state(a).items():  # the aligned copy of B *is* A again
        torch.testing.assert_close(model_state(res.model)[n], t, atol=0, rtol=0, msg=n)
    assert len(res.groups) == (12 if kind == "resnet" else 3)
    assert min(res.info()["identity_fraction"]) < 0.8  # B really was scrambled


def test_scrambled_resnet_has_zero_barrier_after_matching():
    a = _model("resnet")
    x, y = torch.randn(96, 1, 16, 16), torch.randint(0, 10, (96,))
    b, _ = _scrambled(a, x)
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, (x, y), matching="weights", steps=5, refine=False)
    naive = np.asarray(res.curves["naive"]["loss"]["data"])
    assert np.ptp(naive) > 1e-2  # the plain path leaves the function
    assert np.ptp(np.asarray(res.loss["data"])) < 1e-5  # aligned: one network all along
    assert abs(res.barrier_mean["loss"]["data"]) < 1e-5
    assert min(res.aligned["identity_fraction"]) < 0.5


class _OneGroup(nn.Module):
    """conv (6 channels) -> BN -> ReLU -> MaxPool -> flatten -> Linear: one permutation group,
    whose units are blocks of 4 features of the Linear's input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        h = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(h, 1))


def test_one_group_weight_matching_equals_scipy_assignment_on_a_hand_built_cost():
    torch.manual_seed(3)
    a, b = randomize_batchnorm(_OneGroup(), 1), randomize_batchnorm(_OneGroup(), 2)
    sa, sb = matching_state(a), matching_state(b)
    assert "bn.running_mean" not in sa and "bn.weight" in sa
    spec = permutation_spec(a, torch.randn(2, 2, 4, 4))
    assert len(spec.groups) == 1
    perms, _ = weight_matching(spec, sa, sb)
    # C[i, j] = <A's unit i, B's unit j> over every weight the unit owns: conv filter and bias,
    # BN weight and bias (not its running statistics), the fc columns of channel i's 2x2 block
    cost = sa["conv.weight"].flatten(1) @ sb["conv.weight"].flatten(1).T
    for k in ("conv.bias", "bn.weight", "bn.bias"):
        cost += sa[k][:, None] * sb[k][None, :]
    fa, fb = sa["fc.weight"].reshape(3, 6, 4), sb["fc.weight"].reshape(3, 6, 4)
    cost += torch.einsum("kip,kjp->ij", fa, fb)
    _, cols = linear_sum_assignment(cost.double().numpy(), maximize=True)
    assert perms[0].tolist() == cols.tolist()
    assert not np.array_equal(cols, np.arange(6))  # a real permutation, not the identity


@pytest.fixture(scope="module")
def related_pair():
    """A ResNet-18-structured net (width 4) trained 3 epochs on digits upsampled to 16x16, and a
    scrambled copy of it trained 1 more epoch with another seed: the same solution up to a
    permutation and a little drift, so the plain path crosses a barrier and the matched one
    should not."""
    from inspect_kit.zoo.train import fit

    data = digits_images(16)
    a = resnet18(num_classes=10, width=4, in_channels=1, seed=1)
    fit(a, data, epochs=3, seed=1, progress=False)
    b, _ = _scrambled(a.eval(), data.x_train, seed=9)
    fit(b, data, epochs=1, seed=2, progress=False)
    return data, a.eval(), b.eval()


def test_matching_and_repair_lower_the_barrier_of_a_trained_pair(related_pair):
    data, a, b = related_pair
    with assert_untouched(a), assert_untouched(b):
        res = lmc(a, b, data, matching="weights", repair=True, split="both", steps=7,
                  refine=False)
    assert res.aligned["frozen_groups"] == [] and len(res.aligned["groups"]) == 12
    assert res.aligned["max_abs_delta_logit"] < 1e-4
    for split in ("train", "test"):
        naive = res.curves["naive"]["barrier_mean"]["loss"][split]
        matched = res.curves["aligned"]["barrier_mean"]["loss"][split]
        repaired = res.curves["repaired"]["barrier_mean"]["loss"][split]
        assert repaired < 0.5 * naive and matched < 0.5 * naive, (split, naive, matched, repaired)
