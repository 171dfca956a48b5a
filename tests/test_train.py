"""The seeded trainer and `inspect-kit train`: reproducibility, accuracy, snapshots, closed forms."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from inspect_kit.data import DataBundle, formula_data
from inspect_kit.errors import ModelSpecError, NonFiniteError, OptionError
from inspect_kit.zoo import build
from inspect_kit.zoo.kan import KAN
from inspect_kit.zoo.train import fit, train_zoo


def _small_digits(digits, n=400):
    return DataBundle("digits-small", digits.x_train[:n], digits.y_train[:n], digits.x_test,
                      digits.y_test, n_classes=10, image_shape=(1, 8, 8))


def test_same_seed_bit_identical_and_rng_untouched(digits):
    data = _small_digits(digits)
    states = []
    for seed in (3, 3, 4):
        m = build("mlp", sizes=[64, 32, 10], dropout=0.1, seed=0)
        rng = torch.get_rng_state()
        fit(m, data, epochs=2, seed=seed, lr=1e-2)
        assert torch.equal(rng, torch.get_rng_state())  # fit forks the global RNG
        states.append(m.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_mlp_on_digits_reaches_high_test_accuracy(digits):
    model, res = train_zoo("mlp", digits, epochs=5)
    assert model.sizes == (64, 128, 128, 10)
    final = res.final
    assert final["epoch"] == 5 and final["test_acc"] > 0.9
    assert set(final) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc"}
    # the recorded test accuracy is the model's own accuracy on the test split
    with torch.no_grad():
        acc = (model.eval()(digits.x_test).argmax(-1) == digits.y_test).float().mean().item()
    assert acc == pytest.approx(final["test_acc"])


def test_snapshots_count_and_contents(digits):
    data = _small_digits(digits, 200)
    m = build("mlp", sizes=[64, 16, 10])
    init = {k: v.clone() for k, v in m.state_dict().items()}
    res = fit(m, data, epochs=7, snapshot_every=3, batch_size=50)
    assert res.snapshot_epochs == [0, 3, 6, 7]
    assert len(res.snapshots) == 4 and len(res.history) == 7
    for k, v in init.items():
        assert torch.equal(res.snapshots[0][k], v)
        assert torch.equal(res.snapshots[-1][k], m.state_dict()[k])
        assert res.snapshots[-1][k] is not m.state_dict()[k]
    assert not torch.equal(res.snapshots[1]["layers.0.weight"], res.snapshots[2]["layers.0.weight"])
    assert fit(build("mlp", sizes=[64, 10]), data, epochs=2).snapshots == []


def test_lbfgs_reaches_the_least_squares_solution():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g)
    y = X @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * torch.randn(200, 1, generator=g)
    lin = nn.Linear(3, 1)
    res = fit(lin, (X, y), epochs=3, optimizer="lbfgs", lr=1.0)
    A = torch.cat([X, torch.ones(200, 1)], 1).double()
    sol = torch.linalg.lstsq(A, y.double()).solution.squeeze(1)
    torch.testing.assert_close(lin.weight.detach().double().squeeze(0), sol[:3], atol=1e-4, rtol=0)
    assert lin.bias.item() == pytest.approx(sol[3].item(), abs=1e-4)
    assert set(res.final) == {"epoch", "train_loss"}  # regression, no test data


def test_regularizer_and_weight_decay_shrink_weights():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 4, generator=g)
    y = X.sum(1, keepdim=True)
    calls = []

    def l2(model, x):
        calls.append(len(x))
        return 10.0 * model.weight.pow(2).sum()

    free, reg = nn.Linear(4, 1), nn.Linear(4, 1)
    reg.load_state_dict(free.state_dict())
    fit(free, (X, y), epochs=30, lr=0.05, batch_size=32)
    fit(reg, (X, y), epochs=30, lr=0.05, batch_size=32, regularizer=l2)
    assert calls == [32] * 60  # once per mini-batch, with that batch's inputs
    # minimiser of mean (w.x - y)^2 + 10 |w|^2 for x ~ N(0, I): w ~ 1/(1 + 10) per coordinate
    assert free.weight.abs().min() > 0.9
    assert reg.weight.abs().max() < 0.2


def test_kan_on_formula_with_grid_updates():
    data = formula_data("exp_sin", n_train=300, n_test=300)
    calls = []

    class Spy(KAN):
        def update_grid(self, x):
            calls.append(len(x))
            super().update_grid(x)

    model = Spy([2, 5, 1], grid=5, k=3)
    res = fit(model, data, epochs=10, optimizer="lbfgs", lr=1.0, grid_update_every=2)
    assert calls == [300, 300, 300]  # before epochs 0, 2, 4 (first half only)
    assert math.sqrt(res.final["test_loss"]) < 0.05
    assert "test_acc" not in res.final


def test_train_zoo_kan_default_width_and_mismatch():
    data = formula_data("product", n_train=100, n_test=50)
    model, res = train_zoo("kan", data, epochs=1)
    assert model.width == [2, 5, 1] and len(res.history) == 1
    assert model.zoo_spec["kwargs"]["width"] == [2, 5, 1]
    with pytest.raises(ModelSpecError, match=r"width=\[2, \.\.\., 1\]"):
        train_zoo("kan", data, model_kwargs={"width": [3, 5, 1]}, epochs=1)
    with pytest.raises(ModelSpecError, match="image"):
        train_zoo("vit", data, epochs=1)


def test_train_zoo_vit_infers_image_kwargs(digits):
    model, res = train_zoo("vit", _small_digits(digits, 100), epochs=1,
                           model_kwargs={"attention": "fourier_karat", "dim": 16, "depth": 1})
    assert model.zoo_spec["kwargs"]["num_classes"] == 10 and model.n_patches == 16
    assert math.isfinite(res.final["test_loss"])


@pytest.mark.parametrize("kwargs", [dict(optimizer="sgd"), dict(epochs=-1),
                                    dict(snapshot_every=0), dict(grid_update_every=2),
                                    dict(optimizer="lbfgs", weight_decay=0.1)])
def test_bad_options(kwargs):
    with pytest.raises(OptionError):
        fit(nn.Linear(2, 1), (torch.zeros(4, 2), torch.zeros(4, 1)), **kwargs)


def test_divergence_raises_and_float64_models_train():
    X, y = torch.randn(32, 2), torch.randn(32, 1)
    with pytest.raises(NonFiniteError, match="diverged at epoch 1"):
        fit(nn.Linear(2, 1), (X, y), epochs=3,
            regularizer=lambda m, x: m.weight.sum() * float("nan"))
    lin = nn.Linear(2, 1).double()
    res = fit(lin, (X, y), epochs=2, optimizer="lbfgs", lr=1.0, test_data=(X, y))
    assert lin.weight.dtype == torch.float64
    assert res.final["test_loss"] == pytest.approx(res.final["train_loss"])


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, capsys):
    from inspect_kit.checkpoints import load_checkpoint, load_model
    from inspect_kit.cli import main

    out, hist = tmp_path / "m.pt", tmp_path / "h.json"
    rc = main(["train", "mlp", "--data", "digits", "--epochs", "3", "--seed", "1",
               "--snapshot-every", "2", "--model-kwargs", '{"sizes": [64, 32, 10]}',
               "--out", str(out), "--json", str(hist)])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert "test loss" in line and "acc" in line and str(out) in line
    model = load_model(str(out))  # no architecture named
    assert model.sizes == (64, 32, 10)
    ckpt = load_checkpoint(str(out))
    assert len(ckpt.trajectory) == 3  # epochs 0, 2, 3
    assert ckpt.meta["extra"]["train"]["snapshot_epochs"] == [0, 2, 3]
    history = json.loads(hist.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert ckpt.meta["extra"]["train"]["final"]["test_acc"] == pytest.approx(history[-1]["test_acc"])


def test_cli_train_bad_arguments(tmp_path, capsys):
    from inspect_kit.cli import main

    out = tmp_path / "k.pt"
    rc = main(["train", "kan", "--data", "formula:exp_sin", "--model-kwargs", '{"width": [2, 5',
               "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--model-kwargs" in err and "not valid JSON" in err and len(err.strip().splitlines()) == 1
    rc = main(["train", "kan", "--data", "formula:exp_sin", "--model-kwargs", '{"width": [3, 1]}',
               "--out", str(out)])
    assert rc == 2 and "does not fit the data" in capsys.readouterr().err
    rc = main(["train", "cnn", "--data", "digits", "--out", str(out)])
    assert rc == 2 and "unknown zoo model" in capsys.readouterr().err
    assert not out.exists()
