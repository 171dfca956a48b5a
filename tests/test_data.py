import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from inspect_kit.data import FORMULAS, formula_data, load_data, resolve_loss
from inspect_kit.errors import DataError, OptionError
from inspect_kit.view.batches import concat, to_batches


def test_digits_split_matches_sklearn_protocol(digits):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    _, _, ytr, yte = train_test_split(raw.data, raw.target, test_size=0.2, stratify=raw.target,
                                      random_state=0)
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert torch.equal(digits.y_train, torch.tensor(ytr))
    assert torch.equal(digits.y_test, torch.tensor(yte))
    assert digits.task == "classification" and digits.n_outputs == 10
    assert digits.image_shape == (1, 8, 8)
    # standardised with training statistics
    assert digits.x_train.mean(0).abs().max() < 1e-5


def test_wine_and_formulas():
    wine = load_data("wine")
    assert wine.x_train.shape[1] == 13 and wine.n_outputs == 3
    d = formula_data("exp_sin", n_train=200, n_test=50, seed=3)
    x, y = d.x_train.double(), d.y_train.double()
    truth = torch.exp(torch.sin(torch.pi * x[:, 0]) + x[:, 1] ** 2)
    torch.testing.assert_close(y[:, 0], truth, rtol=1e-6, atol=1e-6)
    assert d.task == "regression" and d.truth == FORMULAS["exp_sin"].expr
    again = formula_data("exp_sin", n_train=200, n_test=50, seed=3)
    assert torch.equal(again.x_train, d.x_train)  # seeded
    for name, f in FORMULAS.items():
        dd = formula_data(name, n_train=64, n_test=8)
        assert torch.isfinite(dd.y_train).all(), name
        lo = torch.tensor([r[0] for r in f.ranges])
        assert (dd.x_train >= lo).all()


def test_unknown_names_are_clear_errors():
    with pytest.raises(DataError, match="digits"):
        load_data("mnist")
    with pytest.raises(DataError, match="known"):
        load_data("formula:nope")
    with pytest.raises(DataError, match="does not exist"):
        load_data("missing.npz")


def test_every_data_form_gives_the_same_batches(tmp_path):
    x, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    forms = [
        (x, y),
        (x.numpy(), y.numpy()),
        DataLoader(TensorDataset(x, y), batch_size=8),
        [(x[:10], y[:10]), (x[10:], y[10:])],
        ((x[i : i + 5], y[i : i + 5]) for i in range(0, 30, 5)),  # one-shot generator
    ]
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    forms += [str(tmp_path / "d.npz"), str(tmp_path / "d.pt"), "tests.data_factory:make"]
    for form in forms:
        bs = to_batches(form)
        assert sum(b.n for b in bs) == 30
        whole = concat(bs)
        torch.testing.assert_close(whole.x.float(), x)
        assert torch.equal(whole.target.long(), y)


def test_bad_data_forms():
    with pytest.raises(DataError, match="must match"):
        to_batches((torch.randn(3, 2), torch.zeros(4)))
    with pytest.raises(DataError, match="empty"):
        to_batches((torch.randn(0, 2), torch.zeros(0)))
    with pytest.raises(DataError, match="cannot use"):
        to_batches(42)


def test_dict_batches_from_a_file_keep_token_ids_integer(tmp_path):
    ids = torch.randint(0, 9, (12, 5))
    torch.save({"train": {"input_ids": ids[:8], "attention_mask": torch.ones(8, 5),
                          "labels": torch.arange(8) % 2},
                "test": {"input_ids": ids[8:], "labels": torch.arange(4) % 2}},
               tmp_path / "tok.pt")
    bundle = load_data(str(tmp_path / "tok.pt"))
    train = to_batches(bundle)[0]
    test = to_batches(bundle, split="test")[0]
    assert train.args == () and sorted(train.kwargs) == ["attention_mask", "input_ids"]
    assert train.kwargs["input_ids"].dtype == torch.long and train.n == 8
    assert torch.equal(test.kwargs["input_ids"], ids[8:]) and test.n == 4


def test_loss_defaults_by_task():
    out = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    ce = resolve_loss(None, y)
    torch.testing.assert_close(ce(out, y), torch.nn.functional.cross_entropy(out, y))
    for bad in (torch.tensor([0, 1, 3, 0]), torch.zeros(4, 3, dtype=torch.long), y[:3]):
        with pytest.raises(DataError):  # labels that do not fit the output: not a torch error
            ce(out, bad)
    mse = resolve_loss(None, torch.randn(4, 3))
    t = torch.randn(4, 3)
    torch.testing.assert_close(mse(out, t), ((out - t) ** 2).mean())
    with pytest.raises(OptionError, match="loss"):
        resolve_loss("hinge", t)
