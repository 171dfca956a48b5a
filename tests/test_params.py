import copy

import pytest
import torch
from torch import nn

from inspect_kit.errors import ArchitectureMismatchError, NonFiniteError
from inspect_kit.params import (
    check_finite,
    filter_norms,
    flatten,
    named_params,
    same_structure,
    unflatten,
)
from inspect_kit.testing import assert_untouched


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def test_flatten_roundtrip_and_batch():
    net = _net()
    p = named_params(net)
    v = flatten(p)
    assert v.numel() == sum(t.numel() for t in net.parameters())
    back = unflatten(v, p)
    for k in p:
        assert torch.equal(back[k], p[k])
    batched = unflatten(torch.stack([v, 2 * v]), p)
    assert batched["0.weight"].shape == (2, 6, 4)
    assert torch.equal(batched["0.weight"][1], 2 * p["0.weight"])


def test_filter_norms_match_manual():
    net = _net()
    norms = filter_norms(named_params(net))
    w = net[0].weight.detach()
    manual = torch.sqrt((w**2).sum(1))
    torch.testing.assert_close(norms["0.weight"], manual)
    torch.testing.assert_close(norms["0.bias"], net[0].bias.detach().norm().reshape(1))


def test_structure_and_finiteness_errors():
    a, b = _net(), nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    with pytest.raises(ArchitectureMismatchError, match="0.weight"):
        same_structure(named_params(a), named_params(b))
    bad = copy.deepcopy(a)
    with torch.no_grad():
        bad[2].bias[0] = float("nan")
    with pytest.raises(NonFiniteError, match="2.bias"):
        check_finite(named_params(bad))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n[0].weight.data.add_(1e-3),
        lambda n: n(torch.randn(4, 2)),  # BatchNorm running stats move in train mode
        lambda n: n.eval(),
        lambda n: n[0].bias.requires_grad_(False),
        lambda n: n[0].register_forward_hook(lambda *a: None),
        lambda n: n(torch.randn(4, 2)).sum().backward(),  # leaves .grad behind
    ],
    ids=["weight", "buffer", "training", "requires_grad", "hook", "grad"],
)
def test_assert_untouched_catches_each_kind_of_mutation(mutate):
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(AssertionError, match="modified"):
        with assert_untouched(net):
            mutate(net)


def test_assert_untouched_checks_after_an_error_too():
    net = nn.Linear(2, 2)
    with pytest.raises(AssertionError, match="parameter weight changed"):
        with assert_untouched(net):
            net.weight.data.zero_()
            raise ValueError("analysis failed")


def test_assert_untouched_accepts_nan_weights_left_as_they_were():
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    with assert_untouched(net):
        net(torch.ones(1, 2))
    with pytest.raises(AssertionError, match="weight"):
        with assert_untouched(net):
            net.weight.data[0, 0] = 1.0
