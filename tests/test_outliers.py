"""Papyan's class/cross-class structure against the dense GGN of a small classifier on
well-separated classes (known structure), and the decomposition's identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inspect_kit import zoo
from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView


@pytest.fixture(scope="module")
def trained():
    from inspect_kit.zoo.train import fit

    g = torch.Generator().manual_seed(0)
    C, d, N = 4, 12, 800
    mu = torch.randn(C, d, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    x = mu[y] + 0.7 * torch.randn(N, d, generator=g)
    m = zoo.build("mlp", sizes=(d, 10, C), seed=0)
    fit(m, (x, y), epochs=20, seed=0, progress=False)
    return m, (x, y)


def _dense_ggn(model, x, y):
    from torch.func import functional_call

    view = ModelView(model, (x, y), dtype="float64")
    names, shapes = view.names, view.shapes

    def f(flat):
        ps, i = {}, 0
        for n in names:
            k = int(np.prod(shapes[n]))
            ps[n] = flat[i:i + k].reshape(shapes[n])
            i += k
        return functional_call(model.double(), ps, (x.double(),))

    J = torch.autograd.functional.jacobian(f, view.theta)
    model.float()
    p = torch.softmax(f(view.theta).detach(), -1)
    model.float()
    H = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) / len(x)
    return torch.einsum("icn,icd,idm->nm", J, H, J)


def test_outliers_match_the_dense_ggn_and_split_by_class(trained):
    from analyses.hessian.outliers import outliers

    model, data = trained
    with assert_untouched(model):
        res = outliers(model, data, dtype="float64", residual=True, residual_steps=30,
                       progress=False)
    truth = torch.linalg.eigvalsh(_dense_ggn(model, *data)).flip(0).numpy()
    k = len(res.ggn_eigenvalues)
    assert k == 4 * 4 + 10
    np.testing.assert_allclose(res.ggn_eigenvalues, truth[:k], rtol=1e-6, atol=1e-10)
    # the C class outliers come first, then the cross-class ones; the class span holds them
    assert res.kinds[:4] == ["class"] * 4 and res.counts["class"] == 4
    assert np.all(res.class_capture[:4] > 0.8) and np.all(res.class_capture[4:] < 0.5)
    assert res.counts["cross-class"] >= 8 and "class" not in res.kinds[4:]
    assert np.all(res.means_capture[:11] > 0.85)
    assert sorted(a["class"] for a in res.attribution[:4]) == [0, 1, 2, 3]
    assert res.residual["negative_mass"] > 0  # the Hessian's second-order term is indefinite


def test_decomposition_identities(trained):
    from analyses.hessian import class_means as cm

    model, (x, y) = trained
    view = ModelView(model, (x, y), dtype="float64")
    means = cm.class_means(view, 4)
    parts = cm.split_means(means)
    tr_all = float((parts["all"] ** 2).sum())
    # trace(G_means) = trace of the class part + trace of the cross-class part
    assert tr_all == pytest.approx(float((parts["class"] ** 2).sum() + (parts["cross"] ** 2).sum()),
                                   rel=1e-12)
    # G_means <= G (the rest is a PSD within-group second moment): compare top eigenvalues
    G = _dense_ggn(model, x, y)
    top_means = float(cm.gram_eigenvalues(parts["all"])[0])
    assert top_means <= float(torch.linalg.eigvalsh(G)[-1]) * (1 + 1e-9)
    # the means by hand for one (class, logit) pair
    with torch.no_grad():
        p = torch.softmax(model.double()(x.double()), -1)
    model.float()
    c, cp = 2, 1
    idx = torch.nonzero(y == c).flatten()
    from torch.func import functional_call

    def zc(flat, i):
        ps = view.unflatten(flat)
        return functional_call(model.double(), ps, (x[i:i + 1].double(),))[0]

    acc = torch.zeros(view.n, dtype=torch.float64)
    for i in idx[:40].tolist():
        Ji = torch.autograd.functional.jacobian(lambda th, i=i: zc(th, i), view.theta)  # (C, n)
        u = p[i, cp].sqrt() * (F.one_hot(torch.tensor(cp), 4).double() - p[i])
        acc += Ji.T @ u
    model.float()
    sub = ModelView(model, (x[idx[:40]], y[idx[:40]]), dtype="float64")
    want = acc / 40  # pi_c = 1 in the sub-view, N_c = 40
    torch.testing.assert_close(cm.class_means(sub, 4)[c, cp], want, rtol=1e-9, atol=1e-12)


def test_outliers_refuse_regression_and_bad_labels():
    from analyses.hessian.outliers import outliers
    from inspect_kit.errors import OptionError

    m = zoo.build("mlp", sizes=(3, 4, 2), seed=0)
    with pytest.raises(OptionError, match="integer class labels"):
        outliers(m, (torch.randn(10, 3), torch.randn(10, 2)), progress=False)
