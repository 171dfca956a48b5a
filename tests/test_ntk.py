"""Empirical NTK against independent truths: a direct ``torch.func`` Jacobian contraction written
here (MLP, CNN with BatchNorm, transformer encoder; every method and form), ``numpy`` eigenvalues
of the formed kernel, a subset run for a kernel too big to form, hand-written kernel distances,
and a dense Gauss-Newton matrix."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from analyses.ntk import NTKResult, ntk
from analyses.ntk.chunks import chunks
from analyses.ntk.contraction import kernel_by_contraction
from analyses.ntk.products import kernel_by_products
from inspect_kit.errors import DataError, OptionError, SizeLimitError
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(3, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(x)).mean(1))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def _cnn() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


MODELS = {
    "mlp": (_mlp, lambda g: torch.randn(7, 4, generator=g)),
    "cnn": (_cnn, lambda g: torch.randn(7, 1, 6, 6, generator=g)),
    "transformer": (Encoder, lambda g: torch.randn(7, 4, 3, generator=g)),
}


def _model(kind: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    make, inputs = MODELS[kind]
    return make().eval(), inputs(torch.Generator().manual_seed(1))


def direct_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Theta[i, j, a, b] = <J_ia, J_jb> by jacrev of the whole batch (float64 copy)."""
    m = copy.deepcopy(model).double().eval()
    params = {k: v.detach() for k, v in m.named_parameters()}
    J = jacrev(lambda p: functional_call(m, p, (x.double(),)))(params)
    n, o = m(x.double()).shape
    Jf = torch.cat([J[k].reshape(n, o, -1) for k in params], -1)
    return torch.einsum("iap,jbp->ijab", Jf, Jf)


def _forms(full: torch.Tensor) -> dict[str, np.ndarray]:
    return {"full": full.numpy(), "trace": torch.einsum("ijaa->ij", full).numpy(),
            "per_output": torch.einsum("ijaa->aij", full).numpy()}


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("method", ["contraction", "ntvp"])
def test_every_method_equals_the_direct_contraction(kind, method):
    model, x = _model(kind)
    truth = _forms(direct_ntk(model, x))
    for form in ("full", "trace", "per_output"):
        with assert_untouched(model):
            r = ntk(model, (x,), kernel=form, method=method, dtype="float64", samples=None,
                    top_k=2, progress=False)
        assert r.method == method and r.kernel.shape == truth[form].shape
        err = np.abs(r.kernel - truth[form]).max() / np.abs(truth[form]).max()
        assert err < 1e-6, (kind, method, form, err)


@pytest.mark.parametrize("fn", [kernel_by_contraction, kernel_by_products])
def test_chunks_and_blocks_of_any_size_give_the_same_kernel(fn):
    model, x = _model("mlp")
    truth = direct_ntk(model, x).numpy()
    view = ModelView(model, (x,), dtype="float64")
    for chunk, block in ((3, 2), (2, 5), (7, 1), (1, 7)):
        K = fn(view, chunks(view, chunk), "full", block=block, progress=False)
        assert K.shape == (7, 7, 3, 3)
        np.testing.assert_allclose(K.numpy(), truth, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("form", ["full", "trace", "per_output"])
def test_matrix_free_eigenvalues_equal_eigvalsh_of_the_kernel(kind, form):
    model, x = _model(kind)
    K = _forms(direct_ntk(model, x))[form]
    if form == "full":
        n, _, o, _ = K.shape
        mats = [K.transpose(0, 2, 1, 3).reshape(n * o, n * o)]
    else:
        mats = [K] if form == "trace" else list(K)
    want = np.stack([np.linalg.eigvalsh(M)[::-1][:3] for M in mats])
    with assert_untouched(model):
        r = ntk(model, (x,), kernel=form, matrix_free=True, top_k=3, dtype="float64",
                samples=None, tol=1e-10, progress=False)
    assert r.method == "matrix_free" and r.kernel is None and r.products > 0
    got = np.atleast_2d(r.eigenvalues)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10 * want.max())
    dense = ntk(model, (x,), kernel=form, top_k=3, dtype="float64", samples=None,
                progress=False)
    np.testing.assert_allclose(np.atleast_2d(dense.eigenvalues), want, rtol=1e-10)


def test_a_kernel_too_big_to_form_agrees_with_a_subset_run():
    """3000 samples whose kernel exceeds memory= go matrix-free; the top-2 eigenvalues per
    sample, lambda_k(K_N) / N (Nystrom estimates of the kernel operator's eigenvalues), agree
    with those of a formed 500-sample kernel within 5% (sampling error ~ 1/sqrt(500))."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(1))
    with pytest.raises(SizeLimitError, match="samples<="):
        ntk(net, (x,), samples=None, top_k=2, memory="16MB", matrix_free=False,
            progress=False)
    with assert_untouched(net):
        big = ntk(net, (x,), samples=None, top_k=2, memory="16MB", dtype="float64",
                  progress=False)
    sub = ntk(net, (x,), samples=500, top_k=2, dtype="float64", progress=False)
    assert big.method == "matrix_free" and "matrix-free" in big.provenance["matrix_free"]
    assert sub.method in ("contraction", "ntvp") and sub.kernel.shape == (500, 500)
    np.testing.assert_allclose(big.eigenvalues / 3000, sub.eigenvalues / 500, rtol=0.05)


def test_the_refusal_names_a_sample_count_that_fits():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(300, 8)
    with pytest.raises(SizeLimitError) as info:
        ntk(net, (x,), kernel="full", memory="10MB", matrix_free=False, samples=None,
            progress=False)
    fits = int(str(info.value).split("samples<=")[1].split()[0])
    assert 0 < fits < 300
    ok = ntk(net, (x,), kernel="full", samples=fits, memory="10MB", matrix_free=False,
             top_k=1, progress=False)
    assert ok.kernel.shape == (fits, fits, 4, 4) and ok.memory_bytes <= 10**7
    assert ok.kernel.nbytes < 10**7
    with pytest.raises(SizeLimitError):
        ntk(net, (x,), kernel="full", samples=fits + 1, memory="10MB", matrix_free=False,
            progress=False)


def test_auto_picks_products_for_many_outputs_and_contraction_for_convolutions():
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 100))
    r = ntk(wide, (torch.randn(24, 16),), kernel="full", top_k=0, progress=False)
    assert r.method == "ntvp" and r.costs["ntvp"]["seconds"] < r.costs["contraction"]["seconds"]
    conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 64, 1))
    r = ntk(conv, (torch.randn(24, 1, 8, 8),), kernel="full", top_k=0, progress=False)
    assert r.method == "contraction"


def test_change_against_another_model_matches_the_formulas():
    model, x = _model("mlp")
    torch.manual_seed(5)
    other = _mlp()
    y = torch.randint(0, 3, (7,))
    A, B = direct_ntk(other, x), direct_ntk(model, x)
    MA = A.permute(0, 2, 1, 3).reshape(21, 21).numpy()
    MB = B.permute(0, 2, 1, 3).reshape(21, 21).numpy()
    H = np.kron(np.eye(7) - 1 / 7, np.eye(3))  # centring over samples, outputs untouched

    def cos(P, Q):
        return (P * Q).sum() / np.linalg.norm(P) / np.linalg.norm(Q)

    with assert_untouched(model), assert_untouched(other):
        r = ntk(model, (x, y), kernel="full", compare=other, dtype="float64", samples=None,
                progress=False)
    c = r.change
    assert c["relative_frobenius"] == pytest.approx(np.linalg.norm(MB - MA) / np.linalg.norm(MA),
                                                    rel=1e-10)
    assert c["alignment"] == pytest.approx(cos(MA, MB), rel=1e-10)
    assert c["distance"] == pytest.approx(1 - cos(MA, MB), rel=1e-8)
    assert c["cka"] == pytest.approx(cos(H @ MA @ H, H @ MB @ H), rel=1e-10)
    Y = np.eye(3)[y.numpy()].reshape(-1)
    assert r.target_alignment == pytest.approx(cos(H @ MB @ H, H @ np.outer(Y, Y) @ H), rel=1e-10)
    same = ntk(model, (x, y), kernel="trace", compare=model, samples=None, progress=False)
    assert same.change["relative_frobenius"] == 0 and same.change["alignment"] == pytest.approx(1)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_ggn_eigenvalues_equal_the_weighted_kernel_eigenvalues(loss):
    model, x = _model("mlp")
    g = torch.Generator().manual_seed(3)
    y = torch.randn(7, 3, generator=g) if loss == "mse" else torch.randint(0, 3, (7,), generator=g)
    m = copy.deepcopy(model).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    J = jacrev(lambda p: functional_call(m, p, (x.double(),)))(params)
    Jf = torch.cat([J[k].reshape(21, -1) for k in params], -1)  # (N O, P)
    z = m(x.double()).detach()
    fn = (lambda zz: F.mse_loss(zz.reshape(7, 3), y.double())) if loss == "mse" else \
        (lambda zz: F.cross_entropy(zz.reshape(7, 3), y))
    Lam = torch.autograd.functional.hessian(fn, z.reshape(-1))
    G = (Jf.T @ Lam @ Jf).numpy()
    want = np.linalg.eigvalsh(G)[::-1][:4]
    with assert_untouched(model):
        r = ntk(model, (x, y), kernel="trace", loss=loss, ggn_check=True, top_k=4,
                dtype="float64", samples=None, progress=False)
    np.testing.assert_allclose(r.ggn["ggn_eigenvalues"], want, rtol=1e-8)
    np.testing.assert_allclose(r.ggn["ntk_side_eigenvalues"], want, rtol=1e-8)
    assert r.ggn["max_relative_difference"] < 1e-8
    if loss == "mse":
        assert r.ggn["factor"] == pytest.approx(2 / 21)
        theta = (Jf @ Jf.T).numpy()
        np.testing.assert_allclose(r.ggn["scaled_ntk_eigenvalues"],
                                   2 / 21 * np.linalg.eigvalsh(theta)[::-1][:4], rtol=1e-10)
    else:
        assert r.ggn["factor"] is None


def test_bad_options_are_clear_errors_and_the_model_is_untouched():
    model, x = _model("cnn")
    bad = [({"kernel": "diag"}, OptionError, "full"), ({"method": "fast"}, OptionError, "ntvp"),
           ({"matrix_free": "yes"}, OptionError, "True"), ({"top_k": -1}, OptionError, "top_k"),
           ({"memory": "lots"}, OptionError, "GB"), ({"compare": 3}, OptionError, "Module"),
           ({"model_mode": "training"}, OptionError, "model_mode"),
           ({"model_mode": "train"}, OptionError, "BatchNorm"),
           ({"matrix_free": True, "top_k": 0}, OptionError, "top_k")]
    for kw, err, word in bad:
        with assert_untouched(model), pytest.raises(err, match=word):
            ntk(model, (x,), progress=False, **kw)
    with assert_untouched(model), pytest.raises(DataError):
        ntk(model, (torch.randn(5, 3),), progress=False)  # injected failure midway


def test_json_round_trip_silence_and_table(tmp_path, capsys):
    model, x = _model("mlp")
    y = torch.randint(0, 3, (7,))
    r = ntk(model, (x, y), kernel="per_output", top_k=2, samples=None, progress=False,
            compare=_mlp())
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    r.save(tmp_path / "r.json")
    back = NTKResult.load(tmp_path / "r.json")
    assert back.kernel.shape == (3, 7, 7) and back.eigenvalues.shape == (3, 2)
    for name in ("kernel", "eigenvalues", "residuals"):
        np.testing.assert_allclose(getattr(back, name), getattr(r, name))
    np.testing.assert_allclose(back.change["compare_eigenvalues"], r.change["compare_eigenvalues"])
    assert back.change["cka"] == r.change["cka"] and back.costs == r.costs
    assert back.provenance["options"]["kernel"] == "per_output" and back.labels == y.tolist()
    rows = r.rows()
    assert len(rows) == 6 and {row["output"] for row in rows} == {0, 1, 2}
