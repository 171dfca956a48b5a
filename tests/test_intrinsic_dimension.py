"""Intrinsic dimension against independent truths: the Hadamard matrix (scipy), the closed form of
Fastfood's Gram matrix, plain Adam/SGD on a copy of the model, a hand-worked search, and the
stability of d_int90 across seeds and projections on a tiny problem."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard
from torch import nn

from analyses.intrinsic_dimension import IntrinsicDimensionResult, intrinsic_dimension
from analyses.intrinsic_dimension.hadamard import fwht
from analyses.intrinsic_dimension.projection import DenseProjection, FastfoodProjection
from analyses.intrinsic_dimension.search import search
from inspect_kit.data import DataBundle
from inspect_kit.errors import DataError, OptionError, SizeLimitError
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView
from inspect_kit.zoo.subspace import fit_subspace


def test_fwht_is_the_hadamard_matrix_and_its_own_adjoint():
    for L in (1, 2, 8, 256):
        x = torch.randn(3, L, dtype=torch.float64, requires_grad=True)
        H = torch.as_tensor(hadamard(L), dtype=torch.float64)
        y = fwht(x)
        assert y.shape == (3, L)
        torch.testing.assert_close(y, x @ H.T, rtol=1e-12, atol=1e-12)
        g = torch.randn(3, L, dtype=torch.float64)
        grad, = torch.autograd.grad(y, x, g)
        torch.testing.assert_close(grad, g @ H, rtol=1e-12, atol=1e-12)
    with pytest.raises(OptionError, match="power-of-two"):
        fwht(torch.zeros(6))


def test_fastfood_gram_matrix_has_its_closed_form():
    """D = L: every column has norm 1 exactly and ||P^T P - I||_F^2 equals
    L (L sum g^4 - (sum g^2)^2) / (sum g^2)^2 (Parseval on the Walsh transform of g^2)."""
    P = FastfoodProjection(1024, 1024, seed=3, dtype=torch.float64)
    C = P(torch.eye(1024, dtype=torch.float64))  # rows are the columns of P
    assert C.shape == (1024, 1024)
    gram = C @ C.T
    torch.testing.assert_close(torch.diagonal(gram), torch.ones(1024, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    w = P.G.double() ** 2
    closed = 1024 * (1024 * (w**2).sum() - w.sum() ** 2) / w.sum() ** 2
    assert float((gram - torch.eye(1024)).pow(2).sum()) == pytest.approx(float(closed), rel=1e-9)
    # ... which is about 2 / L per off-diagonal entry (E g^4 = 3): nearly orthogonal columns
    assert float(closed) / (1024 * 1023) == pytest.approx(2 / 1024, rel=0.25)


def test_truncated_fastfood_and_dense_columns_have_unit_norm():
    """D < L: expected squared column norm 1 (mean over 300 columns within 1%, each within 5%);
    the dense projection normalises its columns exactly. Fastfood stores O(L) numbers."""
    Pf = FastfoodProjection(3000, 300, seed=0, dtype=torch.float64)
    norms = Pf(torch.eye(300, dtype=torch.float64)).pow(2).sum(1)
    assert Pf.L == 4096 and norms.shape == (300,)
    assert float(norms.mean()) == pytest.approx(1.0, abs=0.01)
    assert float((norms - 1).abs().max()) < 0.05
    Pd = DenseProjection(3000, 300, seed=0, dtype=torch.float64)
    C = Pd(torch.eye(300, dtype=torch.float64))
    torch.testing.assert_close(C.pow(2).sum(1), torch.ones(300, dtype=torch.float64))
    off = (C @ C.T - torch.eye(300)).pow(2).sum() / (300 * 299)
    assert float(off.sqrt()) == pytest.approx(1 / math.sqrt(3000), rel=0.1)
    assert Pf.bytes == FastfoodProjection(3000, 5, seed=0, dtype=torch.float64).bytes < Pd.bytes / 10
    z = torch.randn(300, dtype=torch.float64)
    torch.testing.assert_close(Pf(z), z @ Pf(torch.eye(300, dtype=torch.float64)))


def _data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 5, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


def test_full_space_training_is_plain_adam_on_a_copy():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2))
    x, y = _data()
    with assert_untouched(net):
        run = fit_subspace(ModelView(net, (x, y)), None, epochs=3, lr=1e-2, batch_size=16,
                           seed=7, progress=False)
    twin = copy.deepcopy(net)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        perm = torch.randperm(48, generator=gen)
        for i in range(0, 48, 16):
            idx = perm[i:i + 16]
            opt.zero_grad()
            F.cross_entropy(twin(x[idx]), y[idx]).backward()
            opt.step()
    want = torch.cat([p.detach().reshape(-1) for p in twin.parameters()])
    assert run.d == want.numel() and len(run.history) == 3
    torch.testing.assert_close(run.theta, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        want_loss = float(F.cross_entropy(twin(x), y))
    assert run.history[-1]["train_loss"] == pytest.approx(want_loss, rel=1e-5)


def test_one_subspace_sgd_step_is_the_projected_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2))
    x, y = _data()
    view = ModelView(net, (x, y), dtype="float64")
    P = DenseProjection(view.n, 4, seed=2, dtype=torch.float64)
    run = fit_subspace(view, P, 4, epochs=1, lr=0.1, batch_size=None, optimizer="sgd",
                       progress=False)
    twin = copy.deepcopy(net).double()
    g = torch.autograd.grad(F.cross_entropy(twin(x.double()), y), list(twin.parameters()))
    g = torch.cat([t.reshape(-1) for t in g])
    z = -0.1 * P.P.T @ g  # z_1 = z_0 - lr P^T grad(theta_0)
    torch.testing.assert_close(run.z, z, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.theta, view.theta + P.P @ z, rtol=1e-10, atol=1e-12)


def test_search_brackets_a_step_by_bisection():
    """acc = 1 from d = 37 on: grid 1..64 passes first at 64; bisection at geometric midpoints
    tries 45 (pass), 38 (pass), 35 (fail): d_int90 = 38 in the bracket (35, 38]."""
    tried = []

    def run(d: int) -> float:
        tried.append(d)
        return float(d >= 37)

    acc = search(run, [1, 2, 4, 8, 16, 32, 64, 128], {"relative": 0.9}, refine=3)
    assert tried == [1, 2, 4, 8, 16, 32, 64, 45, 38, 35]
    assert min(d for d, a in acc.items() if a >= 0.9) == 38


def _blobs() -> DataBundle:
    def draw(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        centres = 1.6 * torch.randn(4, 8, generator=torch.Generator().manual_seed(123))
        y = torch.randint(0, 4, (n,), generator=g)
        return centres[y] + torch.randn(n, 8, generator=g), y

    (xtr, ytr), (xte, yte) = draw(400, 1), draw(1000, 2)
    return DataBundle("blobs", xtr, ytr, xte, yte, n_classes=4)


def test_d_int90_is_stable_across_seeds_and_projections():
    """A 4-class problem and an MLP 8-32-4 (420 parameters): d_int90 of both baselines within
    one grid step (a factor 2) across seeds 0-2, and dense vs Fastfood within one step."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    data = _blobs()
    opts = dict(dims=[2, 4, 8, 16, 32, 64, 128], refine=0, epochs=10, lr=0.1, full_lr=1e-2,
                progress=False)
    with assert_untouched(net):
        first = intrinsic_dimension(net, data, seed=0, **opts)
    assert first.full_accuracy > 0.9 and first.chance_accuracy == pytest.approx(0.25, abs=0.05)
    found = {0: first.d_int90}
    for seed in (1, 2):
        found[seed] = intrinsic_dimension(net, data, seed=seed, baseline=first.full_accuracy,
                                          **opts).d_int90
    dense = intrinsic_dimension(net, data, seed=0, projection="dense",
                                baseline=first.full_accuracy, **opts).d_int90
    for name in ("relative", "gap"):
        ds = [found[s][name] for s in (0, 1, 2)]
        assert None not in ds and max(ds) <= 2 * min(ds), (name, ds)
        assert abs(math.log2(dense[name] / found[0][name])) <= 1, (name, dense, found[0])
    assert first.thresholds["gap"] > first.thresholds["relative"]
    assert first.d_int90["gap"] >= first.d_int90["relative"]
    assert first.dims == sorted(first.dims) and len(first.curves) == len(first.dims)
    assert first.accuracy.shape == (len(first.dims),) and len(first.curves[0]) == 10


def test_bad_options_and_data_are_clear_errors(tmp_path, capsys):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    x, y = _data()
    bad = [({"projection": "sparse"}, OptionError, "fastfood"),
           ({"eval_split": "valid"}, OptionError, "test"), ({"dims": [0, 4]}, OptionError, "dims"),
           ({"epochs": 0}, OptionError, "epochs"), ({"baseline": 1.5}, OptionError, "baseline"),
           ({"refine": -1}, OptionError, "refine"), ({"dims": [99]}, OptionError, "D=26"),
           ({"projection": "dense", "memory": 100}, SizeLimitError, "fastfood")]
    for kw, err, word in bad:
        with assert_untouched(net), pytest.raises(err, match=word):
            intrinsic_dimension(net, (x, y), progress=False, **kw)
    with pytest.raises(DataError, match="classification"):
        intrinsic_dimension(net, (x, x[:, :2]), progress=False)
    r = intrinsic_dimension(net, (x, y), dims=[1, 2], epochs=1, refine=0, progress=False)
    assert capsys.readouterr() == ("", "")
    r.save(tmp_path / "r.json")
    back = IntrinsicDimensionResult.load(tmp_path / "r.json")
    np.testing.assert_allclose(back.accuracy, r.accuracy)
    assert back.curves == r.curves and back.d_int90 == r.d_int90 and back.dims == r.dims
    assert back.provenance["options"]["projection"] == "fastfood"


def test_cli_json_loads_back(tmp_path, capsys):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main
    from inspect_kit.results import Result
    from inspect_kit.zoo import build

    ckpt = tmp_path / "m.pt"
    save_checkpoint(build("mlp", sizes=(64, 8, 10), seed=0), ckpt)
    out, fig = tmp_path / "i.json", tmp_path / "i.png"
    rc = main(["intrinsic-dimension", str(ckpt), "--data", "digits", "--dims", "16", "64",
               "--epochs", "2", "--refine", "0", "--baseline", "0.5", "--json", str(out),
               "--plot", str(fig), "--no-progress"])
    assert rc == 0 and fig.stat().st_size > 0
    back = Result.load(out)
    assert isinstance(back, IntrinsicDimensionResult) and back.full_accuracy == 0.5
    assert back.full_curve is None and back.thresholds["relative"] == pytest.approx(0.45)
    assert "d_int90" in capsys.readouterr().out
    assert main(["intrinsic-dimension", str(ckpt), "--data", "digits", "--epochs", "0"]) == 2
