"""GGN, Monte-Carlo Fisher and empirical Fisher products against independent truths: dense
``J^T H_out J`` built from ``torch.autograd.functional`` in the test, per-sample gradients by
``torch.func.vmap(grad)``, curvlinops (when installed), and the Fisher's expectation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 4)).double()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(),
                      nn.Linear(12, 4)).double().eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2.0)
    return m


class _Tiny(nn.Module):
    """A one-layer transformer classifier (nn.TransformerEncoderLayer, mean pooling)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.inp = nn.Linear(3, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        return self.out(self.enc(self.inp(x)).mean(1))


def _data(kind: str, n: int = 21):
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 4, (n,), generator=g)
    if kind == "mlp":
        return torch.randn(n, 6, generator=g, dtype=torch.float64), y
    if kind == "cnn":
        return torch.randn(n, 2, 6, generator=g, dtype=torch.float64), y
    return torch.randn(n, 5, 3, generator=g, dtype=torch.float64), y


MODELS = {"mlp": _mlp, "cnn": _cnn, "transformer": lambda: _Tiny().double().eval()}


def _dense_ggn(model, x, y, loss_fn) -> torch.Tensor:
    """sum_b J^T (d^2 L / dz^2) J on one batch, by autograd.functional (no kit code)."""
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(flat):
        ps, i = {}, 0
        for n, s in zip(names, shapes):
            ps[n] = flat[i:i + s.numel()].reshape(s)
            i += s.numel()
        return functional_call(model, ps, (x,))

    J = torch.autograd.functional.jacobian(f, theta)          # (N, C, n)
    z = f(theta).detach()
    H = torch.autograd.functional.hessian(lambda zz: loss_fn(zz, y), z)  # (N, C, N, C)
    N, C = z.shape
    Jm = J.reshape(N * C, -1)
    return Jm.T @ H.reshape(N * C, N * C) @ Jm


@pytest.mark.parametrize("kind", list(MODELS))
def test_ggn_equals_dense_jt_h_j_and_is_psd(kind):
    model = MODELS[kind]()
    x, y = _data(kind)
    truth = _dense_ggn(model, x, y, F.cross_entropy)
    with assert_untouched(model):
        view = ModelView(model, (x, y), dtype="float64")
        V = torch.randn(3, view.n, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
        got = view.curvature_matvec(V, None, "ggn")
    assert got.shape == (3, view.n)
    torch.testing.assert_close(got, V @ truth, rtol=1e-9, atol=1e-11)
    assert float(torch.linalg.eigvalsh(truth).min()) > -1e-10 * float(truth.abs().max())


def test_ggn_with_batches_and_a_restriction_is_the_diagonal_block():
    model = _mlp()
    x, y = _data("mlp", 30)
    truth = _dense_ggn(model, x, y, F.cross_entropy)
    view = ModelView(model, (x, y), dtype="float64", batch_size=8)  # 4 uneven batches
    names = ["2.weight", "2.bias"]
    sl = slice(6 * 7 + 7, view.n)
    V = torch.randn(2, 32, dtype=torch.float64)
    torch.testing.assert_close(view.curvature_matvec(V, names, "ggn"), V @ truth[sl, sl],
                               rtol=1e-9, atol=1e-11)


def test_empirical_fisher_equals_per_sample_gradient_outer_products():
    from torch.func import functional_call, grad, vmap

    model = _cnn()
    x, y = _data("cnn", 17)
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}

    def one(p, xi, yi):
        out = functional_call(model, {**p, **buffers}, (xi[None],))
        return F.cross_entropy(out, yi[None])

    G = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    Gm = torch.cat([G[n].reshape(len(x), -1) for n in params], 1)  # (N, n)
    EF = Gm.T @ Gm / len(x)
    view = ModelView(model, (x, y), dtype="float64", batch_size=5)
    V = torch.randn(4, view.n, dtype=torch.float64)
    torch.testing.assert_close(view.curvature_matvec(V, None, "empirical_fisher"), V @ EF,
                               rtol=1e-9, atol=1e-11)


def test_monte_carlo_fisher_converges_to_the_ggn():
    model = _mlp()
    x, y = _data("mlp", 12)
    truth = _dense_ggn(model, x, y, F.cross_entropy)
    V = torch.randn(2, truth.shape[0], dtype=torch.float64)
    want = V @ truth
    errs = []
    for s in (20, 2000):
        from inspect_kit.view.ggn import GaussNewtonProducts

        view = ModelView(model, (x, y), dtype="float64")
        got = GaussNewtonProducts(view, "fisher", mc_samples=s, seed=1).matvec(V)
        errs.append(float((got - want).norm() / want.norm()))
    assert errs[1] < 0.08 and errs[1] < errs[0] / 3  # ~1/sqrt(S)
    again = GaussNewtonProducts(ModelView(model, (x, y), dtype="float64"), "fisher",
                                mc_samples=20, seed=1).matvec(V)
    torch.testing.assert_close(again, GaussNewtonProducts(
        ModelView(model, (x, y), dtype="float64"), "fisher", mc_samples=20, seed=1).matvec(V))


def test_monte_carlo_fisher_for_mse_converges_to_the_ggn():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(10, 6, dtype=torch.float64)
    y = torch.randn(10, 3, dtype=torch.float64)
    truth = _dense_ggn(model, x, y, F.mse_loss)
    from inspect_kit.view.ggn import GaussNewtonProducts

    V = torch.randn(2, truth.shape[0], dtype=torch.float64)
    got = GaussNewtonProducts(ModelView(model, (x, y), dtype="float64"), "fisher",
                              mc_samples=4000, seed=0).matvec(V)
    want = V @ truth
    assert float((got - want).norm() / want.norm()) < 0.06


def test_hessian_api_top_eigenvalue_of_the_ggn():
    from analyses.hessian.api import hessian

    model = _mlp()
    x, y = _data("mlp", 30)
    truth = torch.linalg.eigvalsh(_dense_ggn(model, x, y, F.cross_entropy))
    with assert_untouched(model):
        res = hessian(model, (x, y), curvature="ggn", top_k=3, trace=True, trace_budget=100,
                      dtype="float64", progress=False)
    torch.testing.assert_close(torch.as_tensor(res.eigenvalues), truth.flip(0)[:3], rtol=1e-7,
                               atol=1e-10)
    assert res.trace == pytest.approx(float(truth.sum()), rel=1e-9)  # n <= budget: exact
    assert res.curvature == "ggn"


@pytest.mark.parametrize("kind", list(MODELS))
def test_equal_to_curvlinops(kind):
    curvlinops = pytest.importorskip("curvlinops")
    model = MODELS[kind]()
    if kind == "transformer":  # curvlinops uses forward-mode AD, which the eval-mode fused
        model.train()          # encoder kernel lacks; train mode with dropout 0 is the same net
    from torch.nn.attention import SDPBackend, sdpa_kernel  # (and the math attention kernel)

    x, y = _data(kind)
    data = [(x[i:i + 8], y[i:i + 8]) for i in range(0, len(x), 8)]
    params = list(model.parameters())
    view = ModelView(model, (x, y), dtype="float64", batch_size=8, model_mode=None)
    V = torch.randn(3, view.n, dtype=torch.float64)
    for name, cls in (("ggn", curvlinops.GGNLinearOperator),
                      ("empirical_fisher", curvlinops.EFLinearOperator)):
        with sdpa_kernel([SDPBackend.MATH]):
            ref = (cls(model, nn.CrossEntropyLoss(), params, data, check_deterministic=False)
                   @ V.T).T
        ours = view.curvature_matvec(V, None, name)
        assert float((ours - ref).abs().max() / ref.abs().max()) < 1e-6, name


def test_mse_conventions_against_curvlinops():
    """The GGN agrees exactly; for the empirical Fisher of an element-mean MSE curvlinops counts a
    sample's loss as the sum over its C outputs, we as their mean (the batch loss restricted to
    the sample), so theirs is C times ours."""
    curvlinops = pytest.importorskip("curvlinops")
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(16, 6, dtype=torch.float64)
    y = torch.randn(16, 3, dtype=torch.float64)
    data = [(x[:9], y[:9]), (x[9:], y[9:])]
    view = ModelView(model, (x, y), dtype="float64", batch_size=9)
    V = torch.randn(2, view.n, dtype=torch.float64)
    params = list(model.parameters())
    ggn = (curvlinops.GGNLinearOperator(model, nn.MSELoss(), params, data,
                                        check_deterministic=False) @ V.T).T
    ef = (curvlinops.EFLinearOperator(model, nn.MSELoss(), params, data,
                                      check_deterministic=False) @ V.T).T
    torch.testing.assert_close(view.curvature_matvec(V, None, "ggn"), ggn, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(3 * view.curvature_matvec(V, None, "empirical_fisher"), ef,
                               rtol=1e-9, atol=1e-12)
