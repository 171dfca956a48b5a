"""Permutation groups of CNNs and ResNets: the groups of a torchvision-structured ResNet-18 written
out from the architecture (Git Re-Basin's ResNet spec), pooling/flatten forms, grouped and
transposed convolutions, GroupNorm and padding, each checked by the defining property that a
random permutation through the spec leaves the computed function unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec
from inspect_kit.testing import assert_untouched
from tests.resnet_fixture import ConvBNPool, randomize_batchnorm, resnet18, resnet18_groups


def _same_function(model: nn.Module, x: torch.Tensor, seed: int = 1, atol: float = 1e-5):
    """Spec of ``model``; a random permutation of every group keeps the outputs (to ``atol``)."""
    model.eval()
    with assert_untouched(model):
        spec = permutation_spec(model, x[:2])
        perms = [p if not torch.equal(p, torch.arange(len(p))) else torch.roll(p, 1)
                 for p in spec.random(seed)]  # never the identity: every group moves
        state = model_state(model)
        twin = load_state_copy(model, spec.apply(state, perms))
        with torch.no_grad():
            ref, out = model(x), twin(x)
    delta = float((ref - out).abs().max())
    assert delta <= atol * max(1.0, float(ref.abs().max())), f"permuted model differs by {delta}"
    assert spec.unknown_ops == () and spec.frozen == ()
    return spec


def test_resnet18_groups_are_the_architectures():
    width = 4
    m = randomize_batchnorm(resnet18(num_classes=10, width=width, seed=0))
    spec = _same_function(m, torch.randn(6, 3, 32, 32))
    want = resnet18_groups(width)
    assert len(spec.groups) == len(want) == 12  # 4 stage streams + 8 inner channels
    got = sorted((sorted(g.members), g.size) for g in spec.groups)
    assert got == sorted((sorted(members), size) for members, size in want)


def test_resnet18_every_conv_channel_is_permuted():
    m = resnet18(num_classes=10, width=4, seed=1)
    spec = permutation_spec(m, torch.randn(2, 3, 32, 32))
    moved = {(a.name, a.axis) for a in spec.axes if all(g >= 0 for g in a.groups)}
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            assert (f"{name}.weight", 0) in moved, name  # output channels
            if name != "conv1":  # the stem reads the image's channels
                assert (f"{name}.weight", 1) in moved, name
        if isinstance(mod, nn.BatchNorm2d):
            for k in ("weight", "bias", "running_mean", "running_var"):
                assert (f"{name}.{k}", 0) in moved, (name, k)
    assert ("fc.weight", 1) in moved and ("fc.weight", 0) not in moved


def test_resnet18_permuted_model_equals_original_in_float64():
    m = randomize_batchnorm(resnet18(num_classes=10, width=8, seed=2), seed=3).double()
    _same_function(m, torch.randn(4, 3, 32, 32, dtype=torch.float64), seed=4, atol=1e-12)


def test_conv_bn_pool_net_groups_and_flatten_blocks():
    m = randomize_batchnorm(ConvBNPool(channels=(8, 12), hidden=16, side=16))
    spec = _same_function(m, torch.randn(8, 1, 16, 16))
    assert sorted(g.size for g in spec.groups) == [8, 12, 16]
    second = next(g for g in spec.groups if ("features.4.weight", 0) in g.members)
    assert {("features.4.bias", 0), ("features.5.weight", 0), ("features.5.running_var", 0),
            ("fc1.weight", 1)} <= set(second.members)
    fc_in = next(a for a in spec.axes if (a.name, a.axis) == ("fc1.weight", 1))
    # channel c of the 12 x 4 x 4 map is the block of 16 features c*16 .. c*16+15
    assert fc_in.sizes == (12, 4, 4) and fc_in.groups == (second.index, -1, -1)


class _PoolNet(nn.Module):
    """conv -> BN -> ReLU -> <pool> -> <flatten> -> Linear -> ReLU -> Linear, 2-d or 1-d."""

    def __init__(self, pool, flatten, dims: int = 2, side: int = 8) -> None:
        super().__init__()
        conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
        self.conv, self.bn = conv(3, 6, 3, padding=1), bn(6)
        self.pool, self.flatten = pool, flatten
        with torch.no_grad():
            n = self.flatten(self.pool(torch.zeros(1, 6, *(side,) * dims))).shape[1]
        self.fc1, self.fc2 = nn.Linear(n, 5), nn.Linear(5, 3)

    def forward(self, x):
        h = self.flatten(self.pool(torch.relu(self.bn(self.conv(x)))))
        return self.fc2(torch.relu(self.fc1(h)))


POOLS = {
    "MaxPool2d": nn.MaxPool2d(2),
    "AvgPool2d": nn.AvgPool2d(2),
    "AdaptiveAvgPool2d(1)": nn.AdaptiveAvgPool2d(1),
    "AdaptiveAvgPool2d(2)": nn.AdaptiveAvgPool2d((2, 2)),
    "AdaptiveMaxPool2d": nn.AdaptiveMaxPool2d(2),
    "LPPool2d": nn.LPPool2d(2, 2),
    "max_pool2d indices": lambda x: F.max_pool2d(x, 2, return_indices=True)[0],
    "interpolate": lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear"),
}
FLATTENS = {
    "torch.flatten": lambda x: torch.flatten(x, 1),
    "view(size(0), -1)": lambda x: x.view(x.size(0), -1),
    "reshape(len, -1)": lambda x: x.reshape(len(x), -1),
    "nn.Flatten": nn.Flatten(),
}


@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("flatten", list(FLATTENS))
def test_pool_then_flatten_keeps_channels_permutable(pool, flatten):
    torch.manual_seed(0)
    m = randomize_batchnorm(_PoolNet(POOLS[pool], FLATTENS[flatten]))
    spec = _same_function(m, torch.randn(5, 3, 8, 8))
    conv = next(g for g in spec.groups if ("conv.weight", 0) in g.members)
    assert ("fc1.weight", 1) in conv.members and ("bn.running_mean", 0) in conv.members
    assert len(spec.groups) == 2


@pytest.mark.parametrize("pool", [nn.MaxPool1d(2), nn.AvgPool1d(2), nn.AdaptiveAvgPool1d(1),
                                  lambda x: x.mean(-1, keepdim=True)])
def test_1d_pools(pool):
    torch.manual_seed(0)
    m = randomize_batchnorm(_PoolNet(pool, nn.Flatten(), dims=1, side=10))
    spec = _same_function(m, torch.randn(5, 3, 10))
    assert len(spec.groups) == 2


class _Grouped(nn.Module):
    """A grouped conv (4 groups), BatchNorm, a depthwise conv, a transposed conv, reflection
    padding and channel dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(12)
        self.depthwise = nn.Conv2d(12, 12, 3, groups=12)
        self.up = nn.ConvTranspose2d(12, 6, 2, stride=2)
        self.drop = nn.Dropout2d(0.3)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        h = torch.relu(self.bn(self.grouped(torch.relu(self.stem(x)))))
        h = self.depthwise(F.pad(h, (1, 1, 1, 1), mode="reflect"))
        h = self.drop(torch.relu(self.up(torch.relu(h))))
        return self.head(h.mean((2, 3)))


def test_grouped_depthwise_transposed_conv_and_pad():
    torch.manual_seed(0)
    spec = _same_function(randomize_batchnorm(_Grouped()), torch.randn(4, 3, 6, 6))
    # stem out 8 = (4 conv groups) x (2 in each); grouped out 12 = (4 conv groups) x (3 in
    # each), carried by the depthwise conv; the transposed conv's 6 outputs
    assert sorted(g.size for g in spec.groups) == [2, 3, 4, 6]
    axes = {(a.name, a.axis): a for a in spec.axes}
    assert axes["stem.weight", 0].sizes == (4, 2) and axes["grouped.weight", 0].sizes == (4, 3)
    assert axes["depthwise.weight", 0].sizes == (4, 3)
    assert axes["grouped.weight", 0].groups[0] == axes["stem.weight", 0].groups[0]


class _GroupNormNet(nn.Module):
    """conv -> GroupNorm(2 groups) -> ReLU -> grouped transposed conv (2 groups) -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gn = nn.GroupNorm(2, 8)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2, groups=2)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        h = self.up(torch.relu(self.gn(self.conv(x))))
        return self.head(torch.relu(h).amax((2, 3)))


def test_groupnorm_and_grouped_transposed_conv():
    torch.manual_seed(0)
    m = _GroupNormNet()
    with torch.no_grad():
        m.gn.weight.uniform_(0.5, 1.5)
        m.gn.bias.uniform_(-0.5, 0.5)
    spec = _same_function(m, torch.randn(4, 3, 6, 6))
    # 8 channels = (2 norm/conv groups) x (4 in each); 6 outputs = (2 groups) x (3 in each)
    assert sorted(g.size for g in spec.groups) == [2, 3, 4]
    axes = {(a.name, a.axis): a for a in spec.axes}
    assert axes["gn.weight", 0].sizes == (2, 4) and axes["up.weight", 0].sizes == (2, 4)
    assert axes["head.weight", 1].sizes == (2, 3)


def test_groupnorm_and_conv_groups_that_disagree_stay_in_place():
    class Clash(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 12, 1)
            self.gn = nn.GroupNorm(3, 12)  # (3 x 4)
            self.b = nn.Conv2d(12, 8, 1, groups=4)  # (4 x 3): a different factorisation
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.b(torch.relu(self.gn(self.a(x)))).mean((2, 3)))

    spec = permutation_spec(Clash(), torch.randn(2, 3, 4, 4))
    assert not any(("a.weight", 0) == (a.name, a.axis) and any(g >= 0 for g in a.groups)
                   for a in spec.axes)
    assert spec.unknown_ops == ()
