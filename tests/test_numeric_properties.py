"""Property-based tests of the numeric cores against independent truths.

* Lanczos (``analyses.hessian.lanczos``) on random symmetric matrices against
  ``numpy.linalg.eigvalsh`` (distinct spectra: the exact ends; repeated eigenvalues: true
  eigenvalues and the extreme one);
* the power-law fit (``analyses.esd.powerlaw``) against a direct loop over every ``xmin``
  candidate (Clauset et al.'s formulas written out), and its scale invariance;
* the primitive fitter (``analyses.symbolic.fit``): the reported R^2 is the one its parameters
  give (recomputed with numpy) and R^2 is invariant under affine maps of x and y, at scales from
  1e-150 to 1e150; noise-free data of a primitive is fitted to R^2 ~ 1.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from analyses.esd.powerlaw import fit_power_law
from analyses.hessian.lanczos import lanczos_eigs
from analyses.hessian.operator import MatrixOperator
from analyses.symbolic.fit import evaluate_fit, fit_edges
from analyses.symbolic.library import by_name

# ---- Lanczos -------------------------------------------------------------------------------


@st.composite
def symmetric(draw, repeats: bool = False):
    """A random symmetric matrix ``Q diag(lambda) Q^T`` with a drawn spectrum: distinct
    eigenvalues (relative gaps >= 1e-3) or, with ``repeats``, values drawn with repetition."""
    n = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if repeats:
        lam = rng.choice(rng.normal(size=draw(st.integers(1, n))), size=n)
    else:
        lam = np.sort(rng.normal(size=n))
        assume(np.min(np.diff(lam)) >= 1e-3 * np.abs(lam).max())
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * (scale * lam)) @ q.T


def _ends(truth, k, which):
    """The ``k`` eigenvalues ``which`` asks for, from the ascending ``truth``, descending."""
    if which == "largest":
        return truth[::-1][:k]
    if which == "smallest":
        return truth[:k][::-1]
    if which == "both":
        return np.concatenate([truth[::-1][:k], truth[:k][::-1]])
    return np.sort(truth[np.argsort(-np.abs(truth), kind="stable")][:k])[::-1]


@settings(max_examples=60, deadline=None)
@given(a=symmetric(), k=st.integers(1, 6),
       which=st.sampled_from(["largest", "smallest", "magnitude", "both"]))
def test_lanczos_matches_eigvalsh(a, k, which):
    n = len(a)
    k = min(k, n // 2 if which == "both" else n)
    assume(k >= 1)
    truth = np.linalg.eigvalsh(a)  # ascending
    scale = np.abs(truth).max()
    eig = lanczos_eigs(MatrixOperator(torch.from_numpy(a)), k, which=which, tol=1e-10, seed=0)
    want = np.sort(_ends(truth, k, which))[::-1]
    np.testing.assert_allclose(eig.eigenvalues, want, atol=1e-7 * scale, rtol=0)
    assert all(eig.converged)


@settings(max_examples=40, deadline=None)
@given(a=symmetric(repeats=True), k=st.integers(1, 4),
       which=st.sampled_from(["largest", "smallest"]))
def test_lanczos_with_repeated_eigenvalues_returns_true_eigenvalues(a, k, which):
    """Single-vector Lanczos sees each distinct eigenvalue once (a multiplicity can be missed:
    the k-th value may then be the next distinct one), but every value it returns is an
    eigenvalue and the extreme one is always found."""
    truth = np.linalg.eigvalsh(a)
    scale = np.abs(truth).max()
    eig = lanczos_eigs(MatrixOperator(torch.from_numpy(a)), min(k, len(a)), which=which,
                       tol=1e-10, seed=0)
    dist = np.abs(eig.eigenvalues[:, None] - truth[None, :]).min(1)
    assert np.all(dist <= 1e-7 * scale)
    extreme = truth[-1] if which == "largest" else truth[0]
    assert np.min(np.abs(eig.eigenvalues - extreme)) <= 1e-7 * scale


# ---- power-law fit -------------------------------------------------------------------------


def _naive_candidates(x):
    """Clauset et al.'s continuous MLE ``alpha_i`` and KS distance ``D_i`` for every xmin
    candidate ``x_i`` (all but the largest), by plain loops."""
    x = np.sort(x)
    alphas, Ds = [], []
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        s = math.fsum(math.log(v / x[i]) for v in tail)
        alpha = 1 + n / s if s > 0 else math.inf
        if not alpha > 1 or not math.isfinite(alpha):
            D = 1.0
        else:
            D = max(abs(1 - (v / x[i]) ** (1 - alpha) - j / n) for j, v in enumerate(tail))
        alphas.append(alpha)
        Ds.append(D)
    return np.array(alphas), np.array(Ds)


spectra = st.lists(st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False),
                   min_size=20, max_size=120)


@settings(max_examples=60, deadline=None)
@given(x=spectra)
def test_power_law_fit_is_the_minimum_ks_candidate(x):
    x = np.asarray(x)
    assume(len(np.unique(x)) >= 3)
    alphas, Ds = _naive_candidates(x)
    xs = np.sort(x)
    for exact in (True, False):
        fit = fit_power_law(x, exact=exact)
        assert fit.status == "success"
        assert fit.D == pytest.approx(Ds.min(), abs=1e-9)  # the minimal distance ...
        assert Ds[fit.index] == pytest.approx(Ds.min(), abs=1e-9)  # ... at the chosen xmin
        assert fit.alpha == pytest.approx(alphas[fit.index], rel=1e-9)
        assert fit.xmin == xs[fit.index] and fit.n_tail == int(np.sum(x >= xs[fit.index]))


@settings(max_examples=40, deadline=None)
@given(x=spectra, c=st.floats(0.01, 100))
def test_power_law_fit_is_scale_invariant(x, c):
    x = np.asarray(x)
    assume(len(np.unique(x)) >= 3 and c * x.min() > 2e-5)  # all above the 1e-5 threshold
    a, b = fit_power_law(x), fit_power_law(c * x)
    assert b.D == pytest.approx(a.D, abs=1e-9)
    _, Ds = _naive_candidates(x)
    if np.sum(Ds <= Ds.min() + 1e-9) == 1:  # a unique best xmin: the same one, scaled
        assert b.index == a.index and b.xmin == pytest.approx(c * a.xmin, rel=1e-12)
        assert b.alpha == pytest.approx(a.alpha, rel=1e-9)


# ---- primitive fitter ----------------------------------------------------------------------

LIB = ["x", "x^2", "sin", "tanh", "exp"]
X = np.linspace(-1, 1, 96)
HOLD = np.zeros(len(X), bool)
HOLD[1::4] = True  # fit_edges holds out every 4th point when no x_val is given


SCALES = st.sampled_from([1e-150, 1e-3, 1.0, 1e3, 1e150])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sx=SCALES, sy=SCALES)
def test_reported_r2_is_what_the_parameters_give(seed, sx, sy):
    """At any scale of x and y (1e-150 .. 1e150): the parameters reproduce the reported R^2."""
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(size=len(X))) * sy  # an arbitrary curve
    table = fit_edges(X * sx, y, LIB, progress=False)
    yf, xf = y[~HOLD] / sy, X[~HOLD] * sx
    sst = np.sum((yf - yf.mean()) ** 2)
    for k, name in enumerate(table.names):
        assert table.r2[0, k] <= 1 + 1e-12
        if not np.isfinite(table.r2[0, k]):
            continue
        with np.errstate(all="ignore"):
            pred = evaluate_fit(by_name()[name], table.params[0, k], xf) / sy
        r2 = 1 - np.sum((yf - pred) ** 2) / sst
        assert r2 == pytest.approx(table.r2[0, k], abs=1e-5), name


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ay=st.floats(0.1, 10), by=st.floats(-5, 5),
       ax=st.floats(0.2, 5), bx=st.floats(-3, 3), flip=st.booleans(), sx=SCALES, sy=SCALES)
def test_r2_is_invariant_under_affine_maps(seed, ay, by, ax, bx, flip, sx, sy):
    rng = np.random.default_rng(seed)
    y = np.sin(2 * X + rng.uniform(-1, 1)) + 0.3 * rng.normal(size=len(X))
    a = fit_edges(X, y, LIB, progress=False).r2
    b = fit_edges(sx * (ax * X + bx), sy * ((-ay if flip else ay) * y + by), LIB,
                  progress=False).r2
    np.testing.assert_allclose(b, a, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["x^2", "sin", "tanh", "exp"]), a=st.floats(0.5, 2),
       b=st.floats(-0.5, 0.5), c=st.floats(0.5, 3), d=st.floats(-2, 2), neg=st.booleans())
def test_noise_free_primitives_are_fitted_exactly(name, a, b, c, d, neg):
    prim = by_name()[name]
    y = evaluate_fit(prim, (a, b, -c if neg else c, d), X)
    table = fit_edges(X, y, [name], progress=False)
    assert table.r2[0, 0] > 1 - 1e-8
    np.testing.assert_allclose(evaluate_fit(prim, table.params[0, 0], X), y, atol=1e-4 * c)
