"""Landscape numbers against a reference whose directions are built in the test.

The documented draw (``torch.Generator().manual_seed(seed)``, one ``torch.randn`` per trainable
tensor in ``named_parameters`` order, direction after direction) is re-done here, and Li et al.'s
filter normalisation is written out by hand: every output channel ``d[i]`` of a weight is scaled
to ``||theta[i]||`` (one factor per output channel, not per ``(out, in)`` kernel: the two differ
once a convolution has several input channels), biases get a zero direction. The grid is then
evaluated by the naive loop (deep copy, ``load_state_dict``, forward). Also: the sign convention
of PCA directions on a trajectory with a known main direction.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.landscape.api import landscape
from analyses.landscape.directions import pca_directions, random_directions
from inspect_kit.testing import assert_untouched


def _convnet() -> nn.Module:
    torch.manual_seed(7)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(2 * 3 * 3, 5))


def _images(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(8)
    scale = torch.tensor([0.5, 1.0, 2.0]).reshape(1, 3, 1, 1)  # channels differ
    return torch.randn(n, 3, 6, 6, generator=g) * scale, torch.randint(0, 5, (n,), generator=g)


def _hand_directions(model: nn.Module, n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    theta = {k: p.detach() for k, p in model.named_parameters()}
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        d = {}
        for k, w in theta.items():
            raw = torch.randn(w.shape, generator=g, dtype=w.dtype)
            if w.dim() <= 1:
                d[k] = torch.zeros_like(w)
                continue
            scale = torch.stack([w[i].norm() / raw[i].norm() for i in range(w.shape[0])])
            d[k] = raw * scale.reshape(-1, *([1] * (w.dim() - 1)))
        out.append(d)
    return out


def test_conv_directions_scale_whole_output_channels():
    model = _convnet()
    mine = _hand_directions(model, 2, seed=4)
    with assert_untouched(model):
        kit = random_directions(model, 2, seed=4)
    for a, b in zip(kit, mine):
        assert list(a) == list(b)
        for k in a:
            assert a[k].shape == b[k].shape
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    # per-kernel normalisation would also give the right row norms: check it is not that
    w, d = model[0].weight.detach(), kit[0]["0.weight"]
    assert w.shape == (4, 3, 3, 3)
    kernel_ratio = d.norm(dim=(2, 3)) / w.norm(dim=(2, 3))  # (out, in)
    assert float(kernel_ratio.std(dim=1).min()) > 0.05


def _naive(model, x, y, dirs, axes) -> np.ndarray:
    net = copy.deepcopy(model).eval()
    theta = {k: p.detach().clone() for k, p in model.named_parameters()}
    out = np.zeros(tuple(len(a) for a in axes))
    for idx in np.ndindex(*out.shape):
        sd = net.state_dict()
        for k in theta:
            sd[k] = theta[k] + sum(float(axes[j][idx[j]]) * dirs[j][k] for j in range(len(axes)))
        net.load_state_dict(sd)
        with torch.no_grad():
            out[idx] = float(F.cross_entropy(net(x), y))
    return out


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_conv_plane_equals_the_naive_loop_with_hand_built_directions(engine):
    model = _convnet()
    x, y = _images()
    with assert_untouched(model):
        res = landscape(model, (x, y), dims=2, steps=5, seed=3, engine=engine,
                        progress=False)
    axes = [np.asarray(a) for a in res.axes]
    assert res.loss.shape == (5, 5) and [len(a) for a in axes] == [5, 5]
    np.testing.assert_allclose(axes[0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    want = _naive(model, x, y, _hand_directions(model, 2, seed=3), axes)
    assert np.ptp(want) > 0.02 and np.abs(want - want.T).max() > 1e-3  # not symmetric in a, b
    np.testing.assert_allclose(res.loss, want, rtol=1e-5, atol=1e-6)
    assert res.center_loss == pytest.approx(want[2, 2], rel=1e-6)


def test_pca_direction_sign_points_to_the_start_of_training():
    g = torch.Generator().manual_seed(0)
    center = {"w": torch.randn(6, 4, generator=g, dtype=torch.float64)}
    u = torch.randn(6, 4, generator=g, dtype=torch.float64)
    u = u / u.norm()
    w2 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    w2 = w2 - (w2 * u).sum() * u
    w2 = w2 / w2.norm()
    # training walks from center + 3 u towards the center, wiggling along w2
    traj = [{"w": center["w"] + (3.0 - 0.4 * k) * u + 0.3 * np.sin(k) * w2} for k in range(8)]
    dirs, ratio, _ = pca_directions(traj, center, 2, ignore=None)
    assert ratio.shape == (2,) and ratio[0] > 0.9
    d1 = dirs[0]["w"]
    assert float((d1 * u).sum()) > 0.99  # +u (towards the start), not -u
    start = traj[0]["w"] - center["w"]
    for d in dirs:  # every direction: the first snapshot has a positive coordinate
        mean = sum(s["w"] - center["w"] for s in traj) / len(traj)
        assert float(((start - mean) * d["w"]).sum()) > 0
