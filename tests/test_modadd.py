"""The modular-addition testbed: data spec, zoo networks, integer tokens through the view and the
trainer, and AdamW's decoupled weight decay against its closed form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inspect_kit.data import load_data, modadd_data
from inspect_kit.errors import DataError, ModelSpecError, OptionError
from inspect_kit.view import ModelView
from inspect_kit.zoo import build
from inspect_kit.zoo.modadd import ModAddNet
from inspect_kit.zoo.train import fit, train_zoo


def test_modadd_data_covers_every_pair_once_with_a_seeded_split():
    d = load_data("modadd:13:0.4")
    assert d.x_train.dtype == torch.long and d.x_train.shape[1] == 2 and d.n_classes == 13
    both = torch.cat([d.x_train, d.x_test])
    codes = both[:, 0] * 13 + both[:, 1]
    assert sorted(codes.tolist()) == list(range(169))
    assert len(d.x_train) == round(0.4 * 169)
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert torch.equal(y, (x[:, 0] + x[:, 1]) % 13)
    again, other = load_data("modadd:13:0.4"), load_data("modadd:13:0.4:1")
    assert torch.equal(again.x_train, d.x_train) and not torch.equal(other.x_train, d.x_train)
    assert len(load_data("modadd:13").x_train) == round(0.3 * 169)
    # the analysis seed never moves the split
    assert torch.equal(load_data("modadd:13:0.4", seed=5).x_train, d.x_train)
    for bad in ("modadd:", "modadd:x", "modadd:2", "modadd:13:1.5", "modadd:13:0.3:1:2"):
        with pytest.raises(DataError, match="modadd"):
            load_data(bad)
    assert modadd_data(5, 0.2).name == "modadd:5:0.2"


def test_integer_tokens_stay_integer_through_the_view():
    d = load_data("modadd:7:0.5")
    net = build("modadd", p=7, d=4, width=8)
    view = ModelView(net, d, dtype="float64")
    x = view.batches[0].args[0]
    assert x.dtype == torch.long and view.theta.dtype == torch.float64
    with torch.no_grad():
        direct = float(F.cross_entropy(net.double()(d.x_train), d.y_train))
    assert view.loss() == pytest.approx(direct, rel=1e-12)


def test_mlp_architecture_is_the_written_formula_and_seeded():
    state = torch.get_rng_state()
    a, b, c = ModAddNet(p=7, d=4, width=8, seed=1), ModAddNet(p=7, d=4, width=8, seed=1), \
        ModAddNet(p=7, d=4, width=8, seed=2)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(u, v) for u, v in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.embed.weight, c.embed.weight)
    x = torch.tensor([[0, 6], [3, 4], [5, 5]])
    E, W, bias, U = a.embed.weight, a.hidden.weight, a.hidden.bias, a.unembed.weight
    want = torch.relu(torch.cat([E[x[:, 0]], E[x[:, 1]]], 1) @ W.T + bias) @ U.T
    torch.testing.assert_close(a(x), want)
    q = ModAddNet(p=7, d=4, width=8, activation="quadratic")
    pre = torch.cat([q.embed.weight[x[:, 0]], q.embed.weight[x[:, 1]]], 1) @ q.hidden.weight.T
    torch.testing.assert_close(q(x), (pre + q.hidden.bias) ** 2 @ q.unembed.weight.T)
    with pytest.raises(DataError, match="integer"):
        a(x.float())
    with pytest.raises(DataError, match=r"\(B, 2\)"):
        a(torch.zeros(3, 3, dtype=torch.long))
    for bad in ({"p": 2}, {"architecture": "rnn"}, {"activation": "tanh"}, {"d": 6, "heads": 4,
                                                                            "architecture":
                                                                            "transformer"}):
        with pytest.raises(ModelSpecError):
            build("modadd", **bad)


def test_transformer_appends_the_equals_token_and_reads_the_last_position():
    net = ModAddNet(p=5, architecture="transformer", d=8, heads=2, seed=0)
    assert net.embed.weight.shape == (6, 8) and net.fourier_points["position"] == -1
    x = torch.tensor([[1, 2], [4, 4]])
    out = net(x)
    assert out.shape == (2, 5)
    # the last position attends causally to (a, b, =): changing a changes the logits
    assert not torch.allclose(out[0], net(torch.tensor([[3, 2]]))[0])


def test_adamw_step_is_decoupled_weight_decay():
    d = load_data("modadd:7:0.5")
    net = build("modadd", p=7, d=4, width=8, seed=0)
    theta0 = {k: v.detach().clone() for k, v in net.named_parameters()}
    loss = F.cross_entropy(net(d.x_train), d.y_train)
    grads = dict(zip(theta0, torch.autograd.grad(loss, list(net.parameters()))))
    lr, wd, eps = 0.01, 0.5, 1e-8
    fit(net, d, epochs=1, optimizer="adamw", lr=lr, weight_decay=wd, batch_size=None,
        betas=(0.9, 0.98))
    for k, p in net.named_parameters():
        g = grads[k]
        # first step: bias-corrected m = g, v = g^2; decay applied to the weights directly
        want = theta0[k] * (1 - lr * wd) - lr * g / (g.abs() + eps)
        torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(OptionError, match="weight_decay"):
        fit(net, d, epochs=1, weight_decay=-1.0)
    with pytest.raises(OptionError, match="betas"):
        fit(net, d, epochs=1, betas=(0.9, 1.0))
    with pytest.raises(OptionError, match="weight_decay"):
        fit(net, d, epochs=1, optimizer="lbfgs", weight_decay=0.1)


def test_train_zoo_modadd_defaults_and_checks():
    model, res = train_zoo("modadd", "modadd:7:0.5", model_kwargs={"d": 4, "width": 8},
                           epochs=3, progress=False)
    assert model.p == 7 and len(res.history) == 3 and "test_acc" in res.history[-1]
    with pytest.raises(ModelSpecError, match="integer pairs"):
        train_zoo("modadd", "digits", epochs=1)
    with pytest.raises(ModelSpecError, match="p=7"):
        train_zoo("modadd", "modadd:7", model_kwargs={"p": 9}, epochs=1)
