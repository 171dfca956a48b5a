"""The rational route (analyses.symbolic.rational): sparse P/Q and sqrt(P/Q) by linear least
squares, checked against closed forms."""

import pytest
import sympy
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic import routes as rt
from analyses.symbolic.rational import monomials, rational_fit


def _box(lo, hi, n=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    return lo + (hi - lo) * torch.rand(n, len(lo), generator=g, dtype=torch.float64)


def _exact(e, truth, syms, X):
    box = torch.stack([X.min(0).values, X.max(0).values], 1).numpy()
    return fm.exact_match(e, truth, list(syms), box)["exact"]


def test_monomials_count_as_the_binomial():
    """``C(n + d, d)`` monomials of total degree <= d, each once."""
    for n in (1, 2, 3, 4):
        for d in (0, 1, 2, 3):
            m = monomials(n, d)
            assert len(m) == len(set(m)) == sympy.binomial(n + d, d)
            assert all(sum(e) <= d for e in m)


@pytest.mark.parametrize("truth, lo, hi, power", [
    ("(x2 + x3)/(1 + x2*x3/x1**2)", [1, 1, 1], [5, 5, 5], 1),  # no variable separates
    ("20 - x1 - x1*x2/(1 + x1**2/2)", [1, 1], [6, 10], 1),  # a saturation, halves
    ("x1/sqrt(1 - x2**2/x3**2)", [1, 1, 3], [5, 2, 10], 2),  # the root of a rational
    ("3*x1**2 - x1*x2 + 7", [-2, -2], [2, 2], 1),  # a polynomial is Q = 1
])
def test_rational_laws_are_recovered_exactly(truth, lo, hi, power):
    n = len(lo)
    syms = sympy.symbols(f"x1:{n + 1}")
    t = sympy.sympify(truth, locals={s.name: s for s in syms})
    X = _box(lo, hi)
    y = fm.evaluate(t, list(syms), X)
    e, info = rational_fit(X, y, syms)
    assert e is not None and info["power"] == power, (e, info)
    assert info["rel_rms"] < 1e-9
    assert _exact(e, t, syms, X), e


def test_a_non_rational_law_gives_no_candidate():
    """``exp(-x1 x2)`` and ``sin(x1) x2``: a degree-4 rational approximates them, but not to
    the 1e-6 relative variance the default gate asks of noise-free data."""
    X = _box([0.5, 0.5], [3, 3])
    for y in (torch.exp(-X[:, 0] * X[:, 1]), torch.sin(3 * X[:, 0]) * X[:, 1]):
        e, info = rational_fit(X, y, sympy.symbols("x1:3"))
        assert e is None and info["power"] is None


def test_noise_keeps_the_true_support():
    """At 1e-3 relative noise the selected support is the true one (four terms) and the fit is
    closer to the noise-free law than the noise is; the criterion does not buy terms to chase
    the noise."""
    X = _box([1, 1, 1], [5, 5, 5], n=2000)
    clean = (X[:, 1] + X[:, 2]) / (1 + X[:, 1] * X[:, 2] / X[:, 0] ** 2)
    g = torch.Generator().manual_seed(1)
    y = clean + 1e-3 * clean.std() * torch.randn(len(clean), generator=g, dtype=torch.float64)
    e, info = rational_fit(X, y, sympy.symbols("x1:4"), gate=4e-6 * float(y.var()))
    assert info["terms"] == 4 and info["degrees"] == (3, 2), (e, info)
    err = fm.evaluate(e, list(sympy.symbols("x1:4")), X) - clean
    assert float(err.pow(2).mean().sqrt()) < 0.3e-3 * float(clean.std())


def test_the_rational_route_snaps_a_fit_of_an_imperfect_network_to_the_law():
    """The route fits the data, not the network (here 1e-3 off), offers the fit only because it
    beats the network, and the polish snaps what the fit left as floats."""
    syms = sympy.symbols("x1:4")
    X = _box([1, 1, 1], [5, 5, 5], n=800)
    truth = sympy.sympify("(x2 + x3)/(1 + x2*x3/x1**2)", locals={s.name: s for s in syms})
    y = fm.evaluate(truth, list(syms), X)
    net = y * (1 + 1e-3 * torch.sin(X[:, 0] + 2 * X[:, 1]))  # a smooth network error
    ctx = rt.Context(list(syms), X, net.reshape(-1, 1), y.reshape(-1, 1),
                     torch.arange(0, 800, 2), 20.0, 5.0, 60, True, 0.999)
    e, info = rt.rational_route(ctx, 0)
    assert _exact(e, truth, syms, X), (e, info)
    # without data the network is the target, and a fit of it is not exact: no candidate
    ctx_net = rt.Context(list(syms), X, net.reshape(-1, 1), None, torch.arange(0, 800, 2),
                         20.0, 5.0, 60, True, 0.999)
    e2, info2 = rt.rational_route(ctx_net, 0)
    assert e2 is None and info2["formula"] is None


def test_a_poor_network_does_not_open_the_gate_to_approximations():
    """An untrained network leaves all the variance: the gate is then the absolute one
    (:data:`analyses.symbolic.routes.RATIONAL_GATE`), which no rational of ``sin(3 x1) x2``
    with few terms reaches."""
    syms = sympy.symbols("x1:3")
    X = _box([0.5, 0.5], [3, 3], n=800)
    y = torch.sin(3 * X[:, 0]) * X[:, 1]
    net = torch.zeros_like(y) + y.mean()
    ctx = rt.Context(list(syms), X, net.reshape(-1, 1), y.reshape(-1, 1),
                     torch.arange(0, 800, 2), 20.0, 5.0, 60, True, 0.999)
    e, info = rt.rational_route(ctx, 0)
    assert e is None and info["formula"] is None


def test_a_scaled_fit_is_a_rational_of_the_reduced_variable_times_the_factor():
    """``y = (x1 - x2) / (x1 + x2) * x2`` is ``x2`` times a degree-1/1 rational of
    ``r = x1 / x2``: fitted to ``y / x2`` with ``scale = x2``, it is exact, and its criterion is
    on ``y`` itself (the held-out relative error of ``x2 * (r - 1)/(r + 1)``)."""
    X = _box([1, 1], [5, 5])
    y = (X[:, 0] - X[:, 1]) / (X[:, 0] + X[:, 1]) * X[:, 1]
    r = sympy.Symbol("r")
    e, info = rational_fit((X[:, 0] / X[:, 1]).reshape(-1, 1), y, [r], scale=X[:, 1])
    assert sympy.simplify(e - (r - 1) / (r + 1)) == 0, (e, info)
    assert info["degrees"] == (1, 1) and info["rel_rms"] < 1e-9 and info["bic"] < 0


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_the_route_fits_reduced_variables_and_the_cosine_of_a_difference(noise):
    """``x1 cos(x2 - x3) / (1 + x1^2 / 2)`` is no rational of the inputs (no fit on them), but
    one of ``x1`` and ``cos w`` once the structure route reduced ``x2, x3`` to ``w = x2 - x3``.
    ``sin w`` is a column too, at most to the first power: with ``sin^2 w`` the design would hold
    the identity ``sin^2 + cos^2 = 1`` and its null vector would be that, not the law."""
    syms = sympy.symbols("x1:4")
    x1, x2, x3 = syms
    truth = x1 * sympy.cos(x2 - x3) / (1 + x1 ** 2 / 2)
    X = _box([1, 1, 1], [5, 5, 5], n=800)
    y = fm.evaluate(truth, list(syms), X)
    g = torch.Generator().manual_seed(1)
    yd = y + noise * y.std() * torch.randn(len(y), generator=g, dtype=torch.float64)
    net = y + 3e-3 * y.std() * torch.sin(X[:, 0] + 2 * X[:, 1])  # a smooth network error
    ctx = rt.Context(list(syms), X, net.reshape(-1, 1), yd.reshape(-1, 1),
                     torch.arange(0, 800, 2), 20.0, 5.0, 60, True, 0.999)
    e, info = rt.rational_route(ctx, 0, [([x1, x2 - x3], None)])
    assert _exact(e, truth, syms, X), (e, info)
    assert info["info"]["on"] == "reduction1"
    e0, _ = rt.rational_route(ctx, 0)
    assert e0 is None or not _exact(e0, truth, syms, X)


def test_symbolic_hands_the_structure_routes_reductions_to_the_rational_route(monkeypatch):
    """The reduced variables the structure route found reach the rational route (and are
    not left in the record)."""
    from analyses.symbolic.api import symbolic
    from inspect_kit import zoo

    marker = ([sympy.Symbol("x1") - sympy.Symbol("x2")], None)
    seen = []

    def structure(adapter, ctx, k, lib, seed):
        return None, {"formula": None, "_reductions": [marker]}

    def rational(ctx, k, reductions=()):
        seen.append(list(reductions))
        return None, {"formula": None}

    monkeypatch.setattr(rt, "structure_route", structure)
    monkeypatch.setattr(rt, "rational_route", rational)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 2, generator=g) * 2 - 1
    y = x[:, :1] ** 2 + torch.sin(x[:, 1:])
    model = zoo.build("kan", width=[2, 2, 1], seed=0)
    res = symbolic(model, (x, y), library="x,x^2,sin", samples=120, structure=True,
                   simplify_seconds=1.0, snap=False, prune=0.0, progress=False)
    assert seen == [[marker]]
    assert "_reductions" not in str(res.to_dict())
