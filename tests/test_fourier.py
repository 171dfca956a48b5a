"""The Fourier audit of modular addition against independent truths (numpy.fft, closed forms).

A small zoo MLP trained here on (a + b) mod 23 (70% of the pairs, full-batch AdamW) memorises by
epoch ~30 and groks near epoch ~270; every number of the audit is checked against numpy's FFT
of the same matrices or logits computed by calling the model directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyses.fourier import FourierResult, fourier
from analyses.fourier.basis import fourier_basis, frequency_energy
from inspect_kit.data import load_data
from inspect_kit.errors import InspectKitError, OptionError, UnsupportedModelError
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build
from inspect_kit.zoo.train import train_zoo

P, DATA = 23, "modadd:23:0.7"


@pytest.fixture(scope="module")
def grokked():
    model, res = train_zoo("modadd", DATA, model_kwargs={"d": 16, "width": 64}, epochs=400,
                           lr=3e-2, snapshot_every=50, progress=False)
    return model, res


@pytest.fixture(scope="module")
def audit(grokked):
    model, res = grokked
    with assert_untouched(model):
        return fourier(model, DATA, trajectory=res.snapshots, snapshot_epochs=res.snapshot_epochs,
                       progress=False)


# -- independent truths ------------------------------------------------------------------------
def gap_rule_numpy(matrix: np.ndarray) -> list[int]:
    """Key frequencies read off numpy's DFT of a (p, d) matrix: the largest drop of the sorted
    per-frequency energies |X_k|^2 (summed over columns), floored at 1e-12 of the largest."""
    p = matrix.shape[0]
    e = (np.abs(np.fft.rfft(matrix, axis=0)[1:p // 2 + 1]) ** 2).sum(1)
    e = np.maximum(e, 1e-12 * e.max())
    order = np.argsort(-e, kind="stable")
    ratios = e[order][:-1] / e[order][1:]
    return sorted(int(k) + 1 for k in order[: int(np.argmax(ratios)) + 1])


def grid_logits(model: nn.Module, p: int) -> np.ndarray:
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    with torch.no_grad():
        out = model.eval()(torch.stack([a.flatten(), b.flatten()], 1))
    return out.double().numpy().reshape(p, p, -1)


def keep_sum_directions(logits: np.ndarray, key: list[int], constant: bool) -> np.ndarray:
    """The part of each output's logit grid on e^{+-i w_k (a + b)} (2-D DFT entries (k, k) and
    (-k, -k)), plus the mean when ``constant``."""
    p = logits.shape[0]
    X = np.fft.fft2(logits, axes=(0, 1))
    mask = np.zeros((p, p, 1))
    for k in key:
        mask[k, k] = mask[p - k, p - k] = 1
    if constant:
        mask[0, 0] = 1
    return np.fft.ifft2(X * mask, axes=(0, 1)).real


def cross_entropy(logits: np.ndarray, pairs: np.ndarray) -> float:
    z = logits[pairs[:, 0], pairs[:, 1]]
    target = pairs.sum(1) % logits.shape[0]
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(z)), target].mean())


def neuron_fraction_numpy(acts: np.ndarray, k: int) -> np.ndarray:
    """Share of each neuron's variance over (a, b) in frequency k's terms (linear in a, in b,
    and the products), by Parseval on numpy's 2-D DFT."""
    p = acts.shape[0]
    power = np.abs(np.fft.fft2(acts, axes=(0, 1))) ** 2
    idx = [(0, k), (0, p - k), (k, 0), (p - k, 0)] + [(i, j) for i in (k, p - k) for j in (k, p - k)]
    part = sum(power[i, j] for i, j in idx)
    return part / (power.sum((0, 1)) - power[0, 0])


# -- tests ---------------------------------------------------------------------------------------
def test_basis_is_orthonormal_and_matches_numpy_dft():
    for p in (7, 23, 10):
        F_ = fourier_basis(p)
        assert torch.allclose(F_.T @ F_, torch.eye(p, dtype=F_.dtype), atol=1e-12)
        v = torch.randn(p, dtype=torch.float64)
        ours = frequency_energy(F_ @ v).numpy()
        X = np.abs(np.fft.rfft(v.numpy())) ** 2
        scale = np.full(len(X), 2.0 / p)
        scale[0] = 1.0 / p
        if p % 2 == 0:
            scale[-1] = 1.0 / p
        np.testing.assert_allclose(ours, scale * X, rtol=1e-10, atol=1e-12)


def test_grokked_model_key_frequencies_equal_direct_dft(grokked, audit):
    model, res = grokked
    assert res.final["test_acc"] >= 0.99 and res.final["train_acc"] == 1.0
    embedding = model.embed.weight.detach().double().numpy()[:P]
    assert list(audit.key_frequencies) == gap_rule_numpy(embedding)
    assert 2 <= len(audit.key_frequencies) <= 6 and audit.key_share > 0.8
    norms = np.sqrt((np.abs(np.fft.rfft(embedding, axis=0)) ** 2).sum(1) * 2 / P)
    np.testing.assert_allclose(audit.embedding_spectrum[1:], norms[1:], rtol=1e-9)


def test_losses_match_direct_computation_and_restricted_beats_full(grokked, audit):
    model, res = grokked
    data = load_data(DATA)
    with torch.no_grad():
        direct = float(F.cross_entropy(model(data.x_test), data.y_test))
    assert audit.metrics["test"]["loss"] == pytest.approx(direct, rel=1e-5)
    assert audit.metrics["train"]["loss"] == pytest.approx(res.final["train_loss"], rel=1e-5)
    logits = grid_logits(model, P)
    key = list(audit.key_frequencies)
    restricted = keep_sum_directions(logits, key, constant=True)
    excluded = logits - keep_sum_directions(logits, key, constant=False)
    for split, x in (("train", data.x_train), ("test", data.x_test)):
        m = audit.metrics[split]
        assert m["restricted_loss"] == pytest.approx(cross_entropy(restricted, x.numpy()),
                                                     rel=1e-6)
        assert m["excluded_loss"] == pytest.approx(cross_entropy(excluded, x.numpy()), rel=1e-6)
    # the paper's finding after grokking: the key frequencies alone do better than the whole
    # network on the held-out pairs and on all pairs, and removing them destroys performance
    assert audit.metrics["all"]["restricted_loss"] < audit.metrics["all"]["loss"]
    assert audit.metrics["test"]["restricted_loss"] < audit.metrics["test"]["loss"]
    assert audit.metrics["train"]["excluded_loss"] > 1.0 > 100 * audit.metrics["train"]["loss"]


def test_neuron_purity_matches_numpy_fft2(grokked, audit):
    model, _ = grokked
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], 1)
    with torch.no_grad():
        acts = torch.relu(model.hidden(model.embed(x).flatten(1))).double().numpy()
    acts = acts.reshape(P, P, -1)
    fractions = np.stack([neuron_fraction_numpy(acts, k) for k in range(1, P // 2 + 1)], 1)
    np.testing.assert_allclose(audit.neuron_fractions[:, 1:], fractions, rtol=1e-7, atol=1e-9)
    assert (audit.neuron_frequency == fractions.argmax(1) + 1).all()
    np.testing.assert_allclose(audit.neuron_purity, fractions.max(1), rtol=1e-7)
    on_key = np.isin(audit.neuron_frequency, audit.key_frequencies)
    assert on_key.mean() > 0.8 and np.median(audit.neuron_purity) > 0.7


def test_trajectory_follows_training(grokked, audit):
    _, res = grokked
    t = audit.trajectory
    assert list(t["epoch"]) == res.snapshot_epochs
    by_epoch = {h["epoch"]: h for h in res.history}
    for i, e in enumerate(res.snapshot_epochs[1:], 1):
        assert t["train_loss"][i] == pytest.approx(by_epoch[e]["train_loss"], rel=1e-5)
        assert t["test_loss"][i] == pytest.approx(by_epoch[e]["test_loss"], rel=1e-5)
    for name in ("loss", "restricted_loss", "excluded_loss"):
        assert t[f"all_{name}"][-1] == pytest.approx(audit.metrics["all"][name], rel=1e-9)
    assert t["key_share"][-1] == pytest.approx(audit.key_share)
    assert t["embedding_spectrum"].shape == (len(res.snapshots), P // 2 + 1)
    # grokking: memorised first (test loss up), restricted loss falls long before the end
    assert t["test_loss"][1] > t["test_loss"][0] and t["test_loss"][-1] < 0.1
    assert t["key_share"][-1] > t["key_share"][0]


class TiedEmbeddingNet(nn.Module):
    """A foreign model: embedding stored (d, p) as in Nanda et al.'s code, one quadratic layer."""

    def __init__(self, W: torch.Tensor, width: int = 8) -> None:
        super().__init__()
        self.W_E = nn.Parameter(W.T.clone().float())
        g = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(2 * W.shape[1], width)
        self.out = nn.Linear(width, W.shape[0])
        with torch.no_grad():
            for t in (self.lin.weight, self.out.weight):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.cat([self.W_E[:, x[:, 0]].T, self.W_E[:, x[:, 1]].T], 1)
        return self.out(torch.relu(self.lin(e)))


def test_synthetic_embedding_frequencies_recovered_exactly():
    p, d, known = 29, 12, [3, 7, 11]
    g = torch.Generator().manual_seed(1)
    x = torch.arange(p, dtype=torch.float64)[:, None]
    W = sum(torch.cos(2 * math.pi * k * x / p) * torch.randn(1, d, generator=g, dtype=torch.float64)
            + torch.sin(2 * math.pi * k * x / p) * torch.randn(1, d, generator=g,
                                                               dtype=torch.float64)
            for k in known)
    net = build("modadd", p=p, d=d, width=16)
    net.embed.weight.data.copy_(W)
    data = f"modadd:{p}:0.5"
    with assert_untouched(net):
        r = fourier(net, data, progress=False)
    assert list(r.key_frequencies) == known
    assert r.key_share == pytest.approx(1.0, abs=1e-6)
    foreign = TiedEmbeddingNet(W)
    with pytest.raises(UnsupportedModelError, match="embedding="):
        fourier(foreign, data, progress=False)
    with assert_untouched(foreign):
        r2 = fourier(foreign, data, embedding="W_E", neurons="lin", progress=False)
    assert list(r2.key_frequencies) == known and r2.embedding == "W_E"
    assert r2.neuron_fractions.shape == (8, p // 2 + 1) and r2.unembedding is None


def test_transformer_architecture_reads_the_last_position():
    net = build("modadd", p=11, architecture="transformer", d=16, heads=2, seed=3)
    with assert_untouched(net):
        r = fourier(net, "modadd:11:0.5", model_mode="eval", dtype="float64", progress=False)
    assert r.neuron_fractions.shape == (64, 6) and r.embedding == "embed.weight"
    data = load_data("modadd:11:0.5")
    with torch.no_grad():
        direct = float(F.cross_entropy(net.double()(data.x_train), data.y_train))
    assert r.metrics["train"]["loss"] == pytest.approx(direct, rel=1e-9)


def test_contract_options_silence_and_json(grokked, audit, tmp_path, capsys):
    model, _ = grokked
    for bad in ({"key_frequencies": "foo"}, {"key_frequencies": [0, 3]}, {"split": "all"},
                {"operands": (0,)}, {"key_frequencies": 99}, {"embedding": "nope"},
                {"neurons": "nope"}, {"p": 2}):
        with assert_untouched(model), pytest.raises(OptionError):
            fourier(model, DATA, progress=False, **bad)
    with assert_untouched(model), pytest.raises(OptionError, match="architecture"):
        fourier(model, DATA, trajectory=[{"embed.weight": torch.zeros(3, 3)}], progress=False)
    with assert_untouched(model), pytest.raises(InspectKitError, match="integer"):
        fourier(model, (torch.randn(5, 2), torch.zeros(5, dtype=torch.long)), progress=False)
    capsys.readouterr()
    with assert_untouched(model):
        r = fourier(model, DATA, key_frequencies=[4, 5], split="test", progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert r.key_frequencies == (4, 5) and list(r.metrics) == ["test"]
    assert r.provenance["analysis"] == "fourier" and r.options["key_frequencies"] == [4, 5]
    audit.save(tmp_path / "a.json")
    back = FourierResult.load(tmp_path / "a.json")
    assert back.key_frequencies == audit.key_frequencies and back.metrics == audit.metrics
    np.testing.assert_array_equal(back.neuron_frequency, audit.neuron_frequency)
    np.testing.assert_allclose(back.trajectory["test_loss"], audit.trajectory["test_loss"])
    assert len(audit.rows()) == P // 2 and audit.wide_frame()["key"].sum() == len(
        audit.key_frequencies)
