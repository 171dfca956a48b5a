"""Attribution vs pykan's own ``attribute()`` on the same data; spline importances vs direct truths."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from inspect_kit.kan import adapter_for
from inspect_kit.kan.attribution import AttributionResult, attribute, edge_scores, node_scores, prune_mask
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo.kan import KAN

kan = pytest.importorskip("kan")


def pykan_model(tmp_path, width, mult_arity=2, seed=1):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return kan.MultKAN(width=width, grid=5, k=3, mult_arity=mult_arity, seed=seed, noise_scale=0.5,
                           auto_save=False, ckpt_path=str(tmp_path / "ckpt"))
    finally:
        torch.set_default_dtype(old)


def xy(n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=dtype) * 2 - 1
    return x, (x[:, :1] ** 2 + torch.sin(x[:, -1:])).to(dtype)


@pytest.mark.parametrize("width,arity", [([3, 4, 2], 2), ([3, [2, 2], 2], 2), ([2, [1, 1], [1, 1]], 3)])
def test_matches_pykan_attribute(tmp_path, width, arity):
    m = pykan_model(tmp_path, width, arity)
    m.act_fun[0].mask.data[0, 1] = 0.0  # a masked edge
    m.fix_symbolic(0, 1, 0, "x^2", fit_params_bool=False, verbose=False, log_history=False)
    x, y = xy(300, m.width_in[0])
    with assert_untouched(m):
        res = attribute(m, (x, torch.zeros(len(x), m.width_in[-1], dtype=x.dtype)))
    m(x)  # pykan attributes whatever ran last: make that the same data
    m.attribute(plot=False)
    for l in range(m.depth):
        np.testing.assert_allclose(res.edge_scores[l], m.edge_scores[l].detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(res.subnode_scores[l], m.subnode_scores[l].detach().numpy(), atol=1e-5)
    for l in range(m.depth + 1):
        np.testing.assert_allclose(res.node_scores[l], m.node_scores[l].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(res.feature_scores, m.feature_score.detach().numpy(), atol=1e-5)
    assert res.edge_scores[0][1, 0] == 0  # the masked edge (in 0 -> out 1) has no spread


def test_prune_mask_matches_pykan_prune_edge(tmp_path):
    m = pykan_model(tmp_path, [3, 5, 1], seed=3)
    x, _ = xy(300, 3)
    res = attribute(m, (x, torch.zeros(300, 1, dtype=x.dtype)))
    th = float(np.median(np.concatenate([s.ravel() for s in res.edge_scores])))
    masks = prune_mask(res, th, node_threshold=-1.0)  # keep every node: edge rule only
    m(x)
    m.attribute(plot=False)
    m.prune_edge(th, log_history=False)
    for l in range(m.depth):
        np.testing.assert_array_equal(masks.edge_keep[l], m.act_fun[l].mask.detach().numpy().T > 0)
    # a dropped hidden node drops its edges
    node_th = float(np.sort(res.node_scores[1])[1])
    masks = prune_mask(res, 0.0, node_threshold=node_th)
    dropped = ~masks.node_keep[1]
    assert dropped.sum() == 2 and not masks.edge_keep[0][dropped].any()
    assert not masks.edge_keep[1][:, dropped].any()


def test_spline_importances_closed_form():
    m = KAN([3, 4, 1], seed=2).double()
    with torch.no_grad():
        m.layers[0].mask[:, 2] = 0.0  # input 2 disconnected
        m.layers[0].coef.mul_(20)
    x, y = xy(400, 3)
    with assert_untouched(m):
        res = attribute(m, (x, y))
    L0 = m.layers[0]
    w = (L0.mask * L0.scale_sp).unsqueeze(-1) * L0.coef
    np.testing.assert_allclose(res.spline_l1, w.abs().sum((0, 2)).detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.spline_l2, w.pow(2).sum((0, 2)).sqrt().detach().numpy(), rtol=1e-10)
    assert res.spline_l1[2] == 0 and res.sensitivity[2] == 0 and res.knockout[2] == 0
    # KAN-SI against central finite differences of the model's own forward
    h = 1e-6
    fd = []
    for i in range(3):
        e = torch.zeros(3, dtype=x.dtype)
        e[i] = h
        fd.append(((m(x + e) - m(x - e)) / (2 * h)).abs().mean().item())
    np.testing.assert_allclose(res.sensitivity, fd, rtol=1e-5, atol=1e-8)
    # KAN-KO against a copy whose first-layer edges of input 0 are masked (the model's own forward)
    m0 = copy.deepcopy(m)
    with torch.no_grad():
        m0.layers[0].mask[:, 0] = 0.0
    base = torch.nn.functional.mse_loss(m(x), y).item()
    np.testing.assert_allclose(res.knockout[0], torch.nn.functional.mse_loss(m0(x), y).item() - base,
                               rtol=1e-8)


def test_helpers_and_round_trip(tmp_path):
    m = KAN([2, 3, 1], seed=0)
    data = xy(100, 2, dtype=torch.float32)
    es, ns = edge_scores(m, data), node_scores(m, data)
    assert [tuple(e.shape) for e in es] == [(3, 2), (1, 3)] and [len(n) for n in ns] == [2, 3, 1]
    assert torch.allclose(ns[-1], torch.ones(1, dtype=ns[-1].dtype))
    res = attribute(m, data)
    res.save(tmp_path / "a.json")
    back = AttributionResult.load(tmp_path / "a.json")
    assert np.allclose(back.edge_scores[0], res.edge_scores[0]) and back.widths == [2, 3, 1]
    assert adapter_for(m).family == back.family
