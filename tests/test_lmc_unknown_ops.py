"""A function without a tracer rule: the warning names it and the groups it kept in place, the
spec and the alignment summary list them, and the rest of the network is still permuted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from analyses.lmc.api import align
from analyses.lmc.permutation import UnknownOpWarning, permutation_spec
from inspect_kit.testing import assert_untouched


class _Rolled(nn.Module):
    """conv a -> ReLU -> torch.roll (no rule) -> conv b -> ReLU -> mean -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 6, 3, padding=1), nn.Conv2d(6, 5, 3, padding=1)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.roll(torch.relu(self.a(x)), 1, dims=-1)
        return self.head(torch.relu(self.b(h)).mean((2, 3)))


def test_unknown_op_warning_names_the_op_and_the_frozen_groups():
    m = _Rolled()
    with pytest.warns(UnknownOpWarning, match=r"no rule for roll.*a\.out \(6 units, by roll\)"):
        spec = permutation_spec(m, torch.randn(2, 2, 5, 5))
    assert spec.unknown_ops == ("roll",)
    frozen = {f.name: f for f in spec.frozen}
    assert set(frozen) == {"a.out", "b.axis1"}  # both sides of the roll
    assert set(frozen["a.out"].members) == {("a.weight", 0), ("a.bias", 0)}
    assert frozen["a.out"].ops == ("roll",) and frozen["a.out"].size == 6
    assert [set(g.members) for g in spec.groups] == [  # b's output channels still move
        {("b.weight", 0), ("b.bias", 0), ("head.weight", 1)}]


def test_known_order_dependence_is_not_reported_as_frozen():
    class Sliced(nn.Module):  # slicing a position is a known reason to keep the order
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.b(h) + h[:, :1]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = permutation_spec(Sliced(), torch.randn(4, 3))
    assert spec.groups == () and spec.frozen == () and spec.unknown_ops == ()


def test_align_reports_frozen_groups():
    torch.manual_seed(0)
    a, b = _Rolled(), _Rolled()
    x = torch.randn(16, 2, 5, 5)
    with assert_untouched(a), assert_untouched(b), pytest.warns(UnknownOpWarning):
        res = align(a, b, "weights", data=(x, torch.zeros(16, dtype=torch.long)))
    info = res.info()
    assert info["unknown_ops"] == ["roll"]
    groups = {f["group"]: f for f in info["frozen_groups"]}
    assert groups["a.out"]["members"] == ["a.weight[0]", "a.bias[0]"]
    assert groups["a.out"]["ops"] == ["roll"] and groups["a.out"]["size"] == 6


def test_without_the_pool_rules_the_resnet_streams_are_reported_frozen(monkeypatch):
    """The failure users met before pooling had rules: reproduce it by removing them."""
    from analyses.lmc.rules import RULES
    from tests.resnet_fixture import resnet18

    monkeypatch.delitem(RULES, "max_pool2d")
    monkeypatch.delitem(RULES, "adaptive_avg_pool2d")
    m = resnet18(num_classes=10, width=4, seed=0)
    with pytest.warns(UnknownOpWarning, match="adaptive_avg_pool2d, max_pool2d") as rec:
        spec = permutation_spec(m, torch.randn(2, 3, 32, 32))
    assert "conv1.out (4 units, by max_pool2d)" in str(rec[0].message)
    by_op = {}
    for f in spec.frozen:
        by_op.setdefault(f.ops, set()).update(f.members)
    assert {("conv1.weight", 0), ("layer1.0.bn2.weight", 0)} <= by_op[("max_pool2d",)]
    assert {("layer4.1.bn2.weight", 0), ("fc.weight", 1)} <= by_op[("adaptive_avg_pool2d",)]
    assert len(spec.groups) == 10  # 12 with the rules: the stage 1 and 4 streams are lost
