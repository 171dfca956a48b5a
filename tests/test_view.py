"""The model view against independent truths: hand-written losses and autograd on the module,
finite differences, ``torch.autograd.functional``, and the models' own forward passes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.errors import DataError, OptionError
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView, to_batches
from inspect_kit.view.jacobian import jacobian, jvp, vjp


def _bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3))
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def _data(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_loss_gradient_and_accuracy_equal_the_module_in_float64_with_batchnorm():
    net = _bn_net()
    x, y = _data()
    twin = copy.deepcopy(net).double()
    out = twin(x.double())
    want_loss = F.cross_entropy(out, y)
    want_grad = torch.cat([g.reshape(-1) for g in
                           torch.autograd.grad(want_loss, list(twin.parameters()))])
    with assert_untouched(net):
        view = ModelView(net, (x, y), dtype="float64", batch_size=7)  # 6 uneven batches
        ev = view.evaluate()
        grad = view.gradient()
    assert view.theta.dtype == torch.float64 and view.state["1.running_var"].dtype == torch.float64
    assert ev.loss == pytest.approx(float(want_loss), rel=1e-12)
    assert ev.accuracy == pytest.approx(float((out.argmax(1) == y).double().mean()))
    assert grad.shape == want_grad.shape
    torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-12)


def test_hvp_block_equals_finite_differences_of_the_gradient():
    net = _bn_net(2)
    x, y = _data(30, 3)
    view = ModelView(net, (x, y), dtype="float64", batch_size=11)
    V = torch.randn(3, view.n, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with assert_untouched(net):
        HV = view.hvp(V)
    eps = 1e-5
    for k in range(3):
        fd = (view.gradient(view.theta + eps * V[k]) - view.gradient(view.theta - eps * V[k])) \
            / (2 * eps)
        torch.testing.assert_close(HV[k], fd, rtol=1e-6, atol=1e-8)


def test_hvp_restricted_to_a_subset_is_the_diagonal_block():
    net = _bn_net(5)
    x, y = _data(25, 6)
    view = ModelView(net, (x, y), dtype="float64")

    def loss(flat):
        return view.functional_loss(view.batches[0])(flat)

    H = torch.autograd.functional.hessian(loss, view.theta)
    names = ["3.weight", "3.bias"]
    sl = slice(view.n - 7 * 3 - 3, view.n)  # the last layer's 24 parameters
    V = torch.randn(2, 24, dtype=torch.float64)
    torch.testing.assert_close(view.hvp(V, names), V @ H[sl, sl], rtol=1e-9, atol=1e-11)


def test_integer_inputs_stay_integer_and_dict_batches_are_keyword_inputs():
    class Tok(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(11, 4)
            self.head = nn.Linear(4, 3)

        def forward(self, input_ids, attention_mask=None):
            h = self.emb(input_ids)
            if attention_mask is not None:
                h = h * attention_mask[..., None]
            return {"logits": self.head(h.mean(1)), "hidden": h}

    torch.manual_seed(0)
    model = Tok()
    ids = torch.randint(0, 11, (6, 5))
    mask = torch.ones(6, 5)
    mask[:, 3:] = 0
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    view = ModelView(model, {"input_ids": ids, "attention_mask": mask, "labels": labels},
                     dtype="float64")
    b = view.batches[0]
    assert b.kwargs["input_ids"].dtype == torch.long and b.args == ()
    assert b.kwargs["attention_mask"].dtype == torch.float64
    want = F.cross_entropy(copy.deepcopy(model).double()(ids, mask.double())["logits"], labels)
    assert view.loss() == pytest.approx(float(want), rel=1e-12)


def test_tuple_outputs_are_unwrapped_and_forward_hook_picks_the_prediction():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 3)

        def forward(self, x):
            return self.lin(x), x.sum()

    torch.manual_seed(1)
    m = Two()
    x, y = _data(12)
    want = float(F.cross_entropy(m(x)[0], y))
    assert ModelView(m, (x, y)).loss() == pytest.approx(want, rel=1e-6)
    swapped = ModelView(m, (x, y), forward=lambda call, b: -call(*b.args)[0])
    assert swapped.loss() == pytest.approx(float(F.cross_entropy(-m(x)[0], y)), rel=1e-6)


def test_samples_is_a_seeded_draw_kept_in_data_order():
    x = torch.arange(50.0).reshape(50, 1)
    y = torch.arange(50)
    b = to_batches((x, y), samples=9, seed=3)[0]
    want = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:9].sort().values
    assert torch.equal(b.target, want) and b.n == 9
    assert torch.equal(to_batches((x, y), samples=9, seed=3)[0].target, want)  # reproducible
    assert not torch.equal(to_batches((x, y), samples=9, seed=4)[0].target, want)
    with pytest.raises(OptionError, match="samples"):
        to_batches((x, y), samples=0)


def test_train_mode_never_writes_running_statistics():
    net = _bn_net(3)
    x, y = _data()
    with assert_untouched(net):
        view = ModelView(net, (x, y), model_mode="train")
        before = view.state["1.running_mean"].clone()
        view.loss()
        view.gradient()
        eng = view.points([{"0.weight": torch.ones_like(net[0].weight)}])
        eng.run(torch.tensor([[0.0], [0.1]]), engine="loop")
    assert torch.equal(view.state["1.running_mean"], before)


@pytest.mark.parametrize("engine", ["loop", "vmap"])
def test_points_equal_loading_the_weights_into_a_copy(engine):
    net = _bn_net(4)
    x, y = _data(33)
    view = ModelView(net, (x, y), batch_size=10)
    g = torch.Generator().manual_seed(0)
    dirs = [{k: torch.randn(v.shape, generator=g) for k, v in net.named_parameters()}
            for _ in range(2)]
    coefs = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-1.0, 0.5]])
    with assert_untouched(net):
        loss, acc, timing = view.points(dirs).run(coefs, engine=engine)
    for c, lo, ac in zip(coefs, loss, acc):
        twin = copy.deepcopy(net)
        with torch.no_grad():
            for k, p in twin.named_parameters():
                p.add_(c[0] * dirs[0][k] + c[1] * dirs[1][k])
            out = twin(x)
        assert lo == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
        assert ac == pytest.approx(float((out.argmax(1) == y).float().mean()))
    assert timing["engine"] == engine


@pytest.mark.parametrize("kind", ["batchnorm", "kan"])
def test_follow_policy_reaches_the_target_model_exactly(kind):
    from inspect_kit.zoo import build

    x, y = _data(60, 9)
    if kind == "batchnorm":
        a, b = _bn_net(0), _bn_net(1)
    else:
        x = torch.rand(60, 5) * 2 - 1
        y = torch.randn(60, 1)
        a = build("kan", width=[5, 3, 1], seed=0)
        b = build("kan", width=[5, 3, 1], seed=1)
        with torch.no_grad():
            b.layers[0].update_grid(x * 0.5)  # different grids (buffers)
    view = ModelView(a, (x, y))
    target = ModelView(b, (x, y)).loss()
    follow = view.points([view.direction_to(b.state_dict(), buffers="follow")])
    keep = view.points([view.direction_to(b.state_dict(), buffers="keep")])
    lo_f, _, _ = follow.run(torch.tensor([[1.0]]))
    lo_k, _, _ = keep.run(torch.tensor([[1.0]]))
    assert lo_f[0] == pytest.approx(target, rel=1e-6, abs=1e-7)
    assert abs(lo_k[0] - target) > 1e-4  # keeping A's buffers is not model B


def test_jacobian_products_equal_autograd_functional_jacobian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.Tanh(), nn.Flatten(),
                        nn.Linear(18, 4)).eval()
    x = torch.randn(5, 2, 8)
    view = ModelView(net, (x, torch.randint(0, 4, (5,))), dtype="float64")
    b = view.batches[0]
    truth = torch.autograd.functional.jacobian(
        lambda th: view.call(view.full_state(th), b), view.theta)  # (5, 4, n)
    assert truth.shape == (5, 4, view.n)
    torch.testing.assert_close(jacobian(view, b), truth, rtol=1e-10, atol=1e-12)
    V = torch.randn(3, view.n, dtype=torch.float64)
    U = torch.randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(jvp(view, V, b), torch.einsum("boN,kN->kbo", truth, V))
    torch.testing.assert_close(vjp(view, U, b), torch.einsum("boN,kbo->kN", truth, U))


def test_bad_inputs_are_clear_errors():
    net = _bn_net()
    x, y = _data()
    with pytest.raises(OptionError, match="model_mode"):
        ModelView(net, (x, y), model_mode="training")
    with pytest.raises(OptionError, match="dtype"):
        ModelView(net, (x, y), dtype="float16")
    with pytest.raises(OptionError, match="include"):
        ModelView(net, (x, y), include="nothing.*")
    with pytest.raises(DataError, match="cannot evaluate"), assert_untouched(net):
        ModelView(net, (torch.randn(4, 6), torch.zeros(4, dtype=torch.long))).loss()
    with pytest.raises(DataError, match="no targets"):
        ModelView(net, (x,)).loss()
