"""Composition on a hand-built KAN with exactly known edges, snapping, safe export, CLI keys."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy
import torch
from torch import nn

from analyses.symbolic import export
from analyses.symbolic import formula as fm
from analyses.symbolic.api import SymbolicResult, symbolic
from analyses.symbolic.snap import candidates, snap
from inspect_kit.errors import NonFiniteError
from inspect_kit.kan.protocol import KANAdapter, sym_affine
from inspect_kit.testing import assert_untouched

PI = math.pi


class _Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64))


class ExactKAN(KANAdapter):
    """[2, 2, 1] with one sum node and one mult node of arity 3 in layer 0 (pykan layout:
    sub-nodes 0 | 1 2 3), edges that are exact closed forms, masks and a bias.

    out = exp(sin(pi x1) + x2^2) + 0.5 * x1 * exp(x2) * (x2 + 2)^2 + 0.25
    """

    family = "exact"

    def __init__(self):
        super().__init__(_Holder(), [2, 2, 1])
        self.masks = [torch.tensor([[1.0, 1], [1, 0], [0, 1], [0, 1]], dtype=torch.float64),
                      torch.tensor([[1.0, 1]], dtype=torch.float64)]

    def edge_shape(self, l):
        return (4, 2) if l == 0 else (1, 2)

    def subnode_owner(self, l):
        return [0, 1, 1, 1] if l == 0 else [0]

    def edge_values(self, l, x):
        x1, x2 = x[:, 0], x[:, 1]
        z = torch.zeros_like(x1)
        if l == 0:
            cols = [[torch.sin(PI * x1), x2**2], [x1, z], [z, torch.exp(x2)], [z, (x2 + 2) ** 2]]
        else:
            cols = [[torch.exp(x1), 0.5 * x2]]
        return torch.stack([torch.stack(r, -1) for r in cols], 1) * self.masks[l]

    def node_map(self, l, sub):
        if l == 0:
            return torch.stack([sub[:, 0], sub[:, 1] * sub[:, 2] * sub[:, 3]], 1)
        return sub + 0.25

    def node_map_sympy(self, l, subs):
        if l == 0:
            return [subs[0], subs[1] * subs[2] * subs[3]]
        return [sym_affine(subs[0], 1.0, 0.25)]

    def mask(self, l):
        return self.masks[l]

    def grid_range(self, l):
        return torch.full((self.edge_shape(l)[1], 2), math.inf) * torch.tensor([-1.0, 1.0])

    def layer_inputs(self, x):
        h = self.prepare_input(x)
        out = []
        for l in range(self.n_layers):
            out.append(h)
            h = self.node_map(l, self.edge_values(l, h).sum(-1))
        return out


TRUTH = "exp(sin(pi*x1) + x2**2) + x1*exp(x2)*(x2 + 2)**2/2 + 1/4"


def test_composed_formula_equals_hand_built_network():
    adapter = ExactKAN()
    g = torch.Generator().manual_seed(0)
    X = torch.rand(600, 2, generator=g, dtype=torch.float64) * 2 - 1
    Y = adapter.forward_from_edges(X)
    lib = ["x", "x^2", "exp", "sin", "tanh", "1/x"]
    with assert_untouched(adapter.model):
        res = symbolic(adapter, (X, Y), library=lib, truth=TRUTH, progress=False)
    funcs = {(e["layer"], e["out"], e["in"]): e["function"] for e in res.edges if not e["masked"]}
    assert funcs == {(0, 0, 0): "sin", (0, 0, 1): "x^2", (0, 1, 0): "x", (0, 2, 1): "exp",
                     (0, 3, 1): "x^2", (1, 0, 0): "exp", (1, 0, 1): "x"}
    assert res.exact is True
    assert res.details["exact_check"]["symbolic_zero"] in (True, None)
    assert res.formula_r2_model > 1 - 1e-12 and res.formula_r2_data > 1 - 1e-12
    # independent check: the final formula vs the closed form on fresh points
    expr = res.sympy()[0]
    syms = fm.input_symbols(2)
    Z = torch.rand(50, 2, generator=g, dtype=torch.float64) * 2 - 1
    x1, x2 = Z[:, 0], Z[:, 1]
    ref = torch.exp(torch.sin(PI * x1) + x2**2) + 0.5 * x1 * torch.exp(x2) * (x2 + 2) ** 2 + 0.25
    torch.testing.assert_close(fm.evaluate(expr, syms, Z), ref, rtol=1e-10, atol=1e-10)
    again = SymbolicResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.formula == res.formula and again.exact is True


def test_snapping_only_when_it_does_not_hurt():
    syms = fm.input_symbols(1)
    x = syms[0]
    X = torch.linspace(-1, 1, 200, dtype=torch.float64)[:, None]
    y_true = torch.sin(PI * X[:, 0]) + 1 / 3
    near = sympy.Float(1.0000003) * sympy.sin(sympy.Float(3.1415929) * x) + sympy.Float(0.33333)
    out = snap(near, syms, X, y_true, y_true)
    assert sympy.simplify(out - (sympy.sin(sympy.pi * x) + sympy.Rational(1, 3))) == 0
    # 0.335 is within 1% of 1/3 (a candidate) but the data say it is not 1/3: it stays 0.335
    # (as the float or as the decimal 67/200, which is a candidate of its own)
    y2 = torch.sin(PI * X[:, 0]) + 0.335
    assert sympy.Rational(1, 3) in candidates(0.335)
    kept = snap(sympy.sin(sympy.pi * x) + sympy.Float(0.335), syms, X, y2, y2)
    offset = kept - sympy.sin(sympy.pi * x)
    assert offset.is_number and abs(float(offset) - 0.335) < 1e-9, kept


@pytest.mark.parametrize("truth", [
    "5*x1**4/2 - 13*x1**3/10 + x2**2/2 - 17*x2/10",  # 3/sqrt(pi) is 0.4 % from 1.7
    "30*x1/x2 + x2",  # an integer above 20
    "x1*x2*(x1/(1 + x1) - 3*x2/40)",  # a decimal, 0.075 = 3/40
])
def test_the_data_choose_among_the_simple_constants_the_fit_allows(truth):
    """The fit allows every candidate within the network's error (here 1 %); among them the
    shortest two-part code wins: ``bits(constant) + n/2 log2(MSE_data)``. On noise-free data
    the true constant's MSE is 0 to rounding, so a simpler near-miss (``3/sqrt(pi)`` for 1.7,
    the shortest by bits) cannot win; before, the first allowed by bits was kept."""
    syms = fm.input_symbols(2)
    t = fm.parse_truth(truth, syms)
    g = torch.Generator().manual_seed(0)
    X = 0.5 + 2.5 * torch.rand(600, 2, generator=g, dtype=torch.float64)
    y = fm.evaluate(t, syms, X)
    y_net = y + 0.01 * y.std() * torch.sin(3 * X[:, 0] + X[:, 1])
    rs = np.random.default_rng(0)
    # the truth with every rational coefficient 0.1-0.3 % off, as a fit to the network leaves it
    start = t.xreplace({a: sympy.Float(float(a) * (1 + 0.002 * rs.choice([-1, 1])))
                        for a in t.atoms(sympy.Rational) if not a.is_Integer or abs(a) > 4})
    out = snap(start, syms, X, y, y_net)
    assert not out.atoms(sympy.Float), out
    assert sympy.simplify(out - t) == 0, out


def test_tiny_offsets_snap_to_zero_not_to_decimals():
    """Feynman I.12.2 as the structure route hands it to snapping (its constants, seed 0): four
    offsets near 0 and one scale near 1/(4 pi). On noise-free data, after the refits, an offset
    ``157/10^9`` fitted "better" than 0 by rounding-level MSE and bought its 37 bits there; the
    data term stops at :data:`analyses.symbolic.snap.RESOLUTION`, so every offset becomes 0."""
    x1, x2, x3, x4 = fm.input_symbols(4)
    g = torch.Generator().manual_seed(0)
    X = (1 + 4 * torch.rand(1000, 4, generator=g)).double()  # data as a float32 file holds
    truth = x1 * x2 / (4 * sympy.pi * x3 * x4**2)  # them: y rounded to 6e-8 relative
    y = fm.evaluate(truth, [x1, x2, x3, x4], X).float().double()
    y_net = y * (1 + 1e-3 * torch.sin(X[:, 0] + 2 * X[:, 3]))
    F = sympy.Float
    start = (F(0.0795345268871168) * (F(-0.000199108110876159) + (x4 + F(0.00285633472466715)) ** -2)
             * (F(0.000650234111684563) + 1 / (x3 - F(0.00577874137910535)))
             * (x1 + F(0.0027736549021765)) * (x2 + F(0.000552458400163474)))
    out = snap(start, [x1, x2, x3, x4], X, y, y_net)
    assert sympy.simplify(out - truth) == 0, out


def test_on_noisy_data_a_snap_is_judged_after_the_others_follow_it():
    """Feynman I.12.2 on seed 1 with 1e-3 noise, as the structure route handed it over: the
    network is 100x worse than the noise, so nearly any value is *allowed*. An offset of
    ``x4`` snapped to 0 without refitting the exponent that compensated it lost 5 % of MSE,
    and ``27/20000`` (19 bits) was kept, then ``44/(7 pi)`` for the exponent. A candidate is
    now scored after the others are refitted to the data: every offset is 0, the exponent 2."""
    x1, x2, x3, x4 = fm.input_symbols(4)
    g = torch.Generator().manual_seed(1)
    X = (1 + 4 * torch.rand(512, 4, generator=g)).double()
    truth = x1 * x2 / (4 * sympy.pi * x3 * x4**2)
    clean = fm.evaluate(truth, [x1, x2, x3, x4], X)
    y = clean + 1e-3 * clean.std() * torch.randn(512, generator=g, dtype=torch.float64)
    y_net = clean * (1 + 1.5e-2 * torch.sin(X[:, 0] + 2 * X[:, 3]))
    F = sympy.Float
    start = (F(0.0787527987309355) * (F(-0.00237102782200361) + 1 / (x3 + F(0.0145407354350431)))
             * (x1 + F(0.0020781804240421)) * (x2 + F(0.0108706527067974))
             / (x4 - F(0.00968767028257358)) ** F(1.98627120911048))
    out = snap(start, [x1, x2, x3, x4], X, y, y_net)
    assert sympy.simplify(out - truth) == 0, out


def test_a_tiny_value_has_no_decimal_candidate():
    """A 3-digit decimal of 1.77e-6 (``177/10^8``) is the fitted value itself: on I.34.14's
    network it beat a refitted 0 by the refit's convergence, ``exp(-atanh(177/10^8 - x2/x1))``.
    Below 1e-3 only 0 is offered; the decimals start at 1e-3 (``23/10000``)."""
    assert candidates(1.77e-6) == [0]
    assert sympy.Rational(23, 10000) in candidates(0.0023)
    assert sympy.Rational(3, 40) in candidates(0.075)


def test_small_offsets_are_tried_as_zero_first():
    """x1^2 / (8 pi^2 x2) fitted to a network 1% off the data: the offsets 0.0176 and 0.0566
    are within the network's error of 1/(18 pi) and 1/(10 sqrt(pi)), which the fit allows; an
    offset that small beside its sum is a fitted zero, and 0 is tried first."""
    x1, x2 = fm.input_symbols(2)
    g = torch.Generator().manual_seed(0)
    X = 1 + 4 * torch.rand(400, 2, generator=g, dtype=torch.float64)
    y_data = X[:, 0] ** 2 / (8 * PI**2 * X[:, 1])
    y_net = y_data * (1 + 0.01 * torch.sin(3 * X[:, 0] + 2 * X[:, 1]))
    F = sympy.Float
    start = F(0.01264) * (((x1 - F(0.0176)) ** 2 + F(0.0566)) / x2)
    out = snap(start, [x1, x2], X, y_data, y_net)
    assert sympy.simplify(out - x1**2 / (8 * sympy.pi**2 * x2)) == 0, out


def test_safe_export_never_divides_by_zero_silently():
    x1, x2 = fm.input_symbols(2)
    expr = 1 / (x1 - sympy.Rational(1, 2)) + sympy.sqrt(x2 + 1) + sympy.log(x2 + 2)
    f = export.to_callable(expr, [x1, x2])
    ok = np.array([[0.0, 0.0], [1.0, 3.0]])
    np.testing.assert_allclose(f(ok), 1 / (ok[:, 0] - 0.5) + np.sqrt(ok[:, 1] + 1)
                               + np.log(ok[:, 1] + 2), rtol=1e-12)
    with pytest.raises(NonFiniteError, match="division by zero"):
        f(np.array([[0.5, 0.0]]))
    with pytest.raises(NonFiniteError, match="root of a negative"):
        f(np.array([[0.0, -1.5]]))
    mod = export.to_torch(expr, [x1, x2])
    assert torch.allclose(mod(torch.tensor(ok)).squeeze(1), torch.tensor(f(ok)))
    with pytest.raises(NonFiniteError):
        mod(torch.tensor([[0.5, 0.0]]))
    descs = [d for d, _ in export.singularities(expr)]
    assert any("division" in d for d in descs) and any("log" in d for d in descs)
    assert export.to_latex(expr).count("frac") >= 1 and fm.op_count(expr) > 3


def test_simplify_timeout_returns_input():
    x = fm.input_symbols(1)[0]
    e = sympy.sin(x) ** 2 + sympy.cos(x) ** 2
    s, ok = fm.simplify_with_timeout(e, 20)
    assert ok and s == 1
    s2, ok2 = fm.simplify_with_timeout(e, 0.0)
    assert s2 == e and ok2 is False


def test_cli_json_keys(tmp_path):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main
    from inspect_kit.zoo import build

    model = build("kan", width=[2, 1, 1], grid=3, k=3, seed=0)
    ckpt = tmp_path / "kan.pt"
    save_checkpoint(model, ckpt)
    x = np.random.default_rng(0).uniform(-1, 1, (200, 2)).astype(np.float32)
    y = np.exp(np.sin(np.pi * x[:, :1]) + x[:, 1:] ** 2).astype(np.float32)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    out, png = tmp_path / "sym.json", tmp_path / "fits.png"
    args = ["symbolic", str(ckpt), "--data", str(data), "--library", "x,x^2,sin,exp",
            "--prune", "0.05", "--json", str(out), "--plot", str(png)]
    assert main(args + ["--no-structure"]) == 0  # the keys do not depend on the route
    d = json.loads(out.read_text())["result"]
    assert set(d) == {"edges", "formula", "formula_r2_model", "formula_r2_data", "provenance",
                      "details", "formula_r2_model_held_out", "formula_r2_data_held_out", "route"}
    assert d["route"] in ("edges", "structure")
    assert d["formula_r2_model_held_out"] is None  # no test split, every sample drawn
    assert d["provenance"]["options"]["prune"] == 0.05
    for e in d["edges"]:
        assert {"layer", "out", "in", "function", "params", "r2", "complexity", "attribution",
                "pareto"} <= set(e)
        assert set(e["params"]) == {"a", "b", "c", "d"}
    assert png.stat().st_size > 0
    assert main(args + ["--no-structure", "--truth", "exp(sin(pi*x1) + x2**2)"]) == 0
    assert "exact" in json.loads(out.read_text())["result"]


def test_zoo_kan_untouched_and_pruning_only_by_attribution():
    from inspect_kit.zoo import build

    model = build("kan", width=[2, 2, 1], grid=3, k=3, seed=1)
    x = torch.rand(200, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = model(x).detach()
    with assert_untouched(model):
        res = symbolic(model, (x, y), library="x,sin", prune=0.2, progress=False,
                       simplify_seconds=1, structure=False)  # pruning is an edge-route step
    for e in res.edges:
        assert (e["function"] == "0") == (e["attribution"] < 0.2)
    assert np.isfinite(res.formula_r2_model) and res.formula_r2_model <= 1


def test_export_guards_functions_rewritten_for_torch():
    """cot (as simplify may return it) is evaluated through 1/tan, and its pole is guarded."""
    from inspect_kit.errors import NonFiniteError

    (x1,) = fm.input_symbols(1)
    f = export.to_callable(sympy.cot(x1), [x1])
    np.testing.assert_allclose(f(np.array([[0.5], [1.0]])), 1 / np.tan([0.5, 1.0]), rtol=1e-12)
    with pytest.raises(NonFiniteError, match="division by zero"):
        f(np.array([[0.5], [0.0]]))


def test_refit_recovers_from_a_stalled_line_search_near_a_log_singularity():
    """exp(a (x2 - b) log(x1 - c)) fitted to x1^x2 with x1 down to 0.002: the gradient in c
    (1/(x1 - c) ~ 500) dwarfs the others and a first L-BFGS step leaves the log's domain; the
    trust-region fallback must still reach a = 1, b = c = 0."""
    x1, x2 = fm.input_symbols(2)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(512, 2, generator=g, dtype=torch.float64)
    X[:, 0] = 0.002 + 0.998 * X[:, 0]
    y = X[:, 0] ** X[:, 1]
    F = sympy.Float
    start = sympy.exp(F(0.98938) * (x2 - F(0.00113)) * sympy.log(x1 - F(0.000418)))
    out = fm.refit(start, [x1, x2], X, y, steps=60)
    vals = sorted(abs(float(f)) for f in out.atoms(sympy.Float))
    assert vals[-1] == pytest.approx(1.0, abs=1e-6) and max(vals[:-1]) < 1e-6, out


@pytest.mark.parametrize("vectorised", [True, False])
def test_jacobian_in_constants_equals_the_closed_form(vectorised, monkeypatch):
    """The trust-region refit's Jacobian (forward mode: vectorised, and one pass per constant
    where an operation cannot be vectorised) against the derivative written by hand, with a
    constant the formula does not use (a zero column)."""
    if not vectorised:
        import torch.func as tfunc

        def unvectorisable(*a, **k):
            raise RuntimeError("vmap: this operation has no batching rule")

        monkeypatch.setattr(tfunc, "jacfwd", unvectorisable)
    x1, x2 = fm.input_symbols(2)
    p = sympy.symbols("_p0:4")
    e = p[0] * sympy.log(x1 + p[1]) + sympy.sin(p[2] * x2)
    fn = fm.lambdify_torch(e, [x1, x2, *p])
    X = torch.tensor([[0.5, -1.0], [1.5, 0.3], [2.0, 2.0], [0.9, 0.0]], dtype=torch.float64)
    th = np.array([1.3, 0.7, -0.4, 5.0])
    J = fm.jacobian_in_constants(fn, [X[:, 0], X[:, 1]], th)
    a, b, c = th[:3]
    want = torch.stack([torch.log(X[:, 0] + b), a / (X[:, 0] + b),
                        X[:, 1] * torch.cos(c * X[:, 1]), torch.zeros(4, dtype=torch.float64)], 1)
    assert J.shape == (4, 4)
    torch.testing.assert_close(J, want, rtol=1e-13, atol=1e-15)


def test_trust_region_keeps_its_floating_point_warnings_to_itself(monkeypatch):
    """A trial step out of the formula's domain has an infinite cost by design, and scipy's
    ratios of it warn (divide by zero, overflow; seen on a pykan model through the CLI). Such a
    warning, emitted inside ``least_squares``, must not reach the user; the fit is unchanged
    (``log(x1 + c)`` fitted to ``log(x1 + 1/100)`` returns ``c = 1/100``)."""
    import warnings

    import scipy.optimize as so

    real = so.least_squares

    def warns_like_scipy(*a, **k):
        np.float64(1.0) / np.float64(0.0)  # the ratio scipy forms after an infinite trial cost
        return real(*a, **k)

    monkeypatch.setattr(so, "least_squares", warns_like_scipy)
    x = torch.linspace(0, 1, 200, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        th = fm._trust_region(lambda x, c: torch.log(x + c), [x], torch.log(x + 0.01),
                              np.array([1.0]), 200)
    assert th is not None and th[0] == pytest.approx(0.01, rel=1e-9)
