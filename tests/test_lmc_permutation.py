"""The traced permutation spec: expected groups (written out by hand from the architectures) and
the defining property that a random permutation leaves the computed function unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from analyses.lmc.permutation import (
    UnknownOpWarning,
    load_state_copy,
    model_state,
    permutation_spec,
)
from inspect_kit import zoo
from inspect_kit.testing import assert_untouched


def _check_same_function(model: nn.Module, x: torch.Tensor, seed: int = 1, atol: float = 1e-5):
    model.eval()
    with assert_untouched(model):
        spec = permutation_spec(model, x[:4])
        perms = spec.random(seed)
        state = model_state(model)
        new = spec.apply(state, perms)
        twin = load_state_copy(model, new)
        with torch.no_grad():
            delta = (model(x) - twin(x)).abs().max().item()
    moved = sum(int((new[n] != state[n]).sum()) for n in state)
    assert moved > 0, "the random permutation moved nothing"
    assert delta < atol, f"permuted model differs by {delta}"
    return spec


def _members(spec):
    return [set(g.members) for g in spec.groups]


def test_mlp_groups_and_function():
    m = zoo.build("mlp", sizes=(6, 5, 4, 3), seed=0)
    spec = _check_same_function(m, torch.randn(16, 6))
    assert _members(spec) == [
        {("layers.0.weight", 0), ("layers.0.bias", 0), ("layers.2.weight", 1)},
        {("layers.2.weight", 0), ("layers.2.bias", 0), ("layers.4.weight", 1)},
    ]
    assert [g.size for g in spec.groups] == [5, 4]
    assert [g.witness for g in spec.groups] == [("layers.1", 1), ("layers.3", 1)]


@pytest.mark.parametrize("act", ["tanh", "gelu", "prelu", "rational"])
def test_mlp_activations_keep_function(act):
    _check_same_function(zoo.build("mlp", sizes=(6, 7, 7, 3), activation=act, seed=2),
                         torch.randn(16, 6))


def test_kan_groups_and_function():
    m = zoo.build("kan", width=[3, 4, 5, 2], seed=0)
    x = torch.rand(32, 3) * 2 - 1
    spec = _check_same_function(m, x)
    edge = ("coef", "scale_base", "scale_sp", "mask")
    for l, g in enumerate(spec.groups):
        want = {(f"layers.{l}.{p}", 0) for p in edge} | {(f"layers.{l}.bias", 0)}
        want |= {(f"layers.{l + 1}.{p}", 1) for p in edge} | {(f"layers.{l + 1}.grid", 0)}
        assert set(g.members) == want
    assert [g.size for g in spec.groups] == [4, 5]


def test_kan_with_different_grids_per_node_keeps_function():
    m = zoo.build("kan", width=[2, 4, 1], seed=3)
    x = torch.rand(64, 2) * 2 - 1
    m.update_grid(x)  # node-specific knots in layer 1: grid rows must move with the nodes
    _check_same_function(m, x)


@pytest.mark.parametrize("attention", ["softmax", "fourier_karat"])
def test_vit_groups_and_function(attention):
    m = zoo.build("vit", dim=24, depth=2, heads=4, attention=attention, seed=0)
    spec = _check_same_function(m, torch.randn(8, 64), atol=2e-5)
    names = {g.name: g for g in spec.groups}
    for b in (0, 1):
        mlp = [g for g in spec.groups if (f"blocks.{b}.mlp.fc1.weight", 0) in g.members]
        assert len(mlp) == 1
        assert set(mlp[0].members) == {(f"blocks.{b}.mlp.fc1.weight", 0),
                                       (f"blocks.{b}.mlp.fc1.bias", 0),
                                       (f"blocks.{b}.mlp.fc2.weight", 1)}
        heads = [g for g in spec.groups if g.size == 4
                 and (f"blocks.{b}.attn.proj.weight", 1) in g.members]
        assert len(heads) == 1, names
        if attention == "fourier_karat":  # per-head score functions move with their heads
            assert (f"blocks.{b}.attn.attn_fn.coef", 0) in heads[0].members
    stream = [g for g in spec.groups if ("pos_embed", 2) in g.members]
    assert len(stream) == 1 and ("head.weight", 1) in stream[0].members
    # the fixed Fourier orders buffer must never be permuted
    assert not any("orders" in n for g in spec.groups for n, _ in g.members)


def test_batchnorm_and_residual_mlp():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(5, 8)
            self.bn = nn.BatchNorm1d(8)
            self.f = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 8))
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.bn(self.inp(x)))
            return self.out(h + self.f(h))

    m = Res()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    spec = _check_same_function(m, torch.randn(16, 5))
    stream = next(g for g in spec.groups if ("inp.weight", 0) in g.members)
    for key in [("bn.running_mean", 0), ("bn.running_var", 0), ("bn.weight", 0),
                ("f.2.weight", 0), ("f.0.weight", 1), ("out.weight", 1)]:
        assert key in stream.members
    assert any(set(g.members) == {("f.0.weight", 0), ("f.0.bias", 0), ("f.2.weight", 1)}
               for g in spec.groups)


def test_order_dependent_ops_fix_the_axes():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = torch.flip(torch.relu(self.a(x)), dims=[-1])  # unknown op: order matters
            g = torch.relu(self.b(h))
            return self.c(torch.cat([g[:, :3], g[:, 3:]], dim=1))  # slicing: order matters

    spec = permutation_spec(Odd(), torch.randn(4, 4))
    assert spec.groups == ()

    class Poke(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            h[:, 0] = 0.0  # in-place write at one unit: that unit is special
            return self.b(h)

    assert permutation_spec(Poke(), torch.randn(4, 4)).groups == ()


@pytest.mark.parametrize("fused", [True, False])
def test_swin_relative_position_bias_keeps_heads_in_place(fused):
    """Swin adds a per-head bias gathered from a table (an op without a rule): permuting heads
    would need the table's columns permuted too, so the head groups must stay in place, on the
    fused path (bias passed to SDPA as ``attn_mask``) as on the explicit one."""
    from .test_attention_timm import TinySwin

    torch.manual_seed(0)
    m = TinySwin(fused=fused, dim=16, heads=2)
    with pytest.warns(UnknownOpWarning):
        spec = _check_same_function(m, torch.randn(4, 8, 8, 16))
    assert all(g.size != 2 for g in spec.groups)  # no head group of 2 is permuted
