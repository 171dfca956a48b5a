"""Every symbolic step is bounded in time and no non-finite formula is returned.

The reported case: a FastKAN with LayerNorm hung for more than 12 minutes in ``sympy.expand``
while its formula was composed (``fold_pow``), and without a truth returned R^2 = -inf. The
deadline helper is tested on calls that would otherwise run for 30 s (a test that passes only
because a call was cut short: the fallback value proves it); no wall-clock assertions.
"""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import sympy
import torch

from analyses.symbolic import deadline
from analyses.symbolic import formula as fm
from analyses.symbolic import routes as rt
from analyses.symbolic.api import symbolic
from inspect_kit.errors import InspectKitError, NonFiniteError, SizeLimitError
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build
from tests.test_kan_adapters import RefEfficientKAN, RefFastKAN, pykan_model

LONG = 30.0


def _slow(value="late"):
    time.sleep(LONG)
    return value


# ------------------------------------------------------------------------------ the helper
def test_deadline_returns_value_or_fallback_and_restores_the_timer():
    assert deadline.call(lambda a, b: a + b, 2, b=3, seconds=5) == 5
    assert deadline.call(_slow, seconds=0.2, fallback="fallback") == "fallback"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    with pytest.raises(deadline.Expired):
        deadline.call(_slow, seconds=0.1)
    assert deadline.call(lambda: 1 / 0, seconds=1, fallback="err") == "err"
    with pytest.raises(ZeroDivisionError):
        deadline.call(lambda: 1 / 0, seconds=1)


def test_deadline_is_not_swallowed_by_library_code():
    def careless():
        try:
            time.sleep(LONG)
        except Exception:  # noqa: BLE001 - what careless library code does: not enough
            return "swallowed"
        return "late"

    def stubborn():
        try:
            time.sleep(LONG)
        except BaseException:  # noqa: BLE001 - swallows even Expired once...
            pass
        time.sleep(LONG)  # ...and the repeating timer stops it here
        return "late"

    assert deadline.call(careless, seconds=0.2, fallback="cut") == "cut"
    assert deadline.call(stubborn, seconds=0.2, fallback="cut") == "cut"


def test_nested_deadlines_never_outlive_the_outer_one():
    def outer():
        inner = deadline.call(_slow, seconds=LONG * 2, fallback="inner fallback")
        return f"outer finished after {inner}"

    assert deadline.call(outer, seconds=0.3, fallback="outer fallback") == "outer fallback"
    # an inner deadline shorter than the outer one falls back and the outer call goes on
    assert deadline.call(lambda: deadline.call(_slow, seconds=0.1, fallback="in") + "+out",
                         seconds=LONG) == "in+out"


def _busy():
    while True:
        pass


def test_the_budget_counts_cpu_seconds_and_caps_waiting():
    """Waiting (here: sleeping, as a descheduled process on a loaded machine does) is not
    computing: a 0.2 s CPU budget lets a call wait 0.4 s, which is under the wall cap; a busy
    call is cut at its budget; a call that waits past the cap falls back (``_slow``)."""
    assert deadline.WALL_FACTOR * 0.2 > 0.4 + 0.2
    assert deadline.call(lambda: time.sleep(0.4) or "waited", seconds=0.2) == "waited"
    assert deadline.call(_busy, seconds=0.2, fallback="cut") == "cut"
    assert deadline.call(_slow, seconds=0.2, fallback="capped") == "capped"
    out = {}

    def worker():  # the forked child: its CPU time from /proc, the same wall cap
        out["waited"] = deadline.call(lambda: time.sleep(0.4) or "waited", seconds=0.2)
        out["cut"] = deadline.call(_busy, seconds=0.2, fallback="cut")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out == {"waited": "waited", "cut": "cut"}


def test_deadline_outside_the_main_thread_uses_a_process():
    out = {}

    def worker():
        out["mode"] = deadline.mode()
        out["value"] = deadline.call(lambda: sympy.expand((sympy.Symbol("x") + 1) ** 3),
                                     seconds=20)
        out["cut"] = deadline.call(_slow, seconds=0.3, fallback="cut")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out["mode"] == "fork"
    assert out["value"] == sympy.expand((sympy.Symbol("x") + 1) ** 3)
    assert out["cut"] == "cut"


def test_a_runaway_sympy_expand_is_cut_short():
    x, y, z = sympy.symbols("x y z")
    big = (x + y + z + 1) ** 400  # millions of terms when expanded
    assert deadline.call(sympy.expand, big, seconds=0.3, fallback=None) is None
    s, ok = fm.simplify_with_timeout(sympy.cos(x) ** 2 + sympy.sin(x) ** 2, 20)
    assert ok and s == 1


def test_fold_pow_and_fold_scale_do_not_expand_nested_sums():
    """The hang: fold_pow expanded (base / k) through every nested power of a composed FastKAN
    formula. Dividing the top-level terms only keeps the size and the value."""
    x1, x2, x3 = fm.input_symbols(3)
    inner = (x1 + x2 + x3 + 1) ** 5
    e = (sympy.Float(2.5) * inner + sympy.Float(0.5) * sympy.sin(x1 * inner)) ** 3
    f = fm.fold_pow(e)
    assert sympy.count_ops(f) <= sympy.count_ops(e) + 4
    assert f.has(inner)  # the nested power is still a power, not its 56-term expansion
    X = torch.rand(20, 3, dtype=torch.float64)
    np.testing.assert_allclose(fm.evaluate(f, [x1, x2, x3], X), fm.evaluate(e, [x1, x2, x3], X),
                               rtol=1e-12)
    g = fm.fold_scale(sympy.Float(3.0) * (sympy.Float(2.0) * inner + 1) * x2)
    assert g.has(inner)


# ------------------------------------------------------------------------------ the pipeline
def _data(n_in, seed=0, n=400):
    g = torch.Generator().manual_seed(seed)
    X = (torch.rand(n, n_in, generator=g, dtype=torch.float64) * 2 - 1) * 1.5
    y = (X[:, :1] * X[:, 1:2] + torch.sin(X[:, -1:])).double()
    return X, y


def _fastkan_case(width, **limits):
    """The reported model class: FastKAN (LayerNorm on every layer, RBF + SiLU base), 3 inputs,
    with a truth (the case that hung): the formula is finite and its R^2 against the network is
    the one recomputed here from the returned formula text."""
    torch.manual_seed(0)
    m = RefFastKAN(width).double()
    X, y = _data(3, n=300)
    with assert_untouched(m):
        res = symbolic(m, (X, y), truth="x1*x2 + sin(x3)", library="x,x^2,sin", samples=None,
                       n_points=101, refit_steps=20, progress=False, **limits)
    assert res.details["family"] == "fastkan"
    assert res.exact is not None and np.isfinite(res.formula_r2_model)
    with torch.no_grad():
        y_net = m(X).reshape(-1)
    pred = fm.evaluate(res.sympy()[0], fm.input_symbols(3), X)
    assert torch.isfinite(pred).all()
    assert abs(fm.r2_score(pred, y_net) - res.formula_r2_model) < 1e-9


def test_fastkan_with_layernorm_finishes_with_a_finite_formula():
    # tight sympy limits: the run must still end with a finite formula when they trigger
    _fastkan_case([3, 3, 1], simplify_seconds=1.0, sympy_seconds=4.0)


@pytest.mark.slow
def test_fastkan_of_the_reported_size_finishes_with_a_finite_formula():
    _fastkan_case([3, 5, 1])


@pytest.mark.parametrize("family", ["zoo", "pykan", "efficient_kan"])
def test_every_kan_family_gives_a_finite_formula(family, tmp_path):
    X, y = _data(2)
    if family == "zoo":
        m = build("kan", width=[2, 3, 1], grid=5, k=3, seed=0).double()
    elif family == "pykan":
        m = pykan_model(tmp_path, [2, 3, 1])
    else:
        m = RefEfficientKAN([2, 3, 1]).double()
    with assert_untouched(m):
        # a 1 s simplify limit: the formula must be finite also when the limit cuts sympy off
        res = symbolic(m, (X, y), truth="x1*x2 + sin(x2)", library="x,x^2,sin", samples=300,
                       n_points=101, refit_steps=20, simplify_seconds=1.0, progress=False)
    assert res.details["family"] == family
    pred = fm.evaluate(res.sympy()[0], fm.input_symbols(2), X)
    assert torch.isfinite(pred).all() and np.isfinite(res.formula_r2_model)


def _additive_kan():
    """A zoo KAN [2, 2, 1] whose hidden node j sees input j only: the output is additive."""
    m = build("kan", width=[2, 2, 1], grid=5, k=3, seed=0).double()
    with torch.no_grad():
        m.layers[0].mask.copy_(torch.eye(2, dtype=torch.float64))
    return m


def test_a_composition_that_does_not_finish_leaves_the_other_route(monkeypatch):
    real = fm.compose

    def slow_compose(*a, **k):
        time.sleep(LONG)
        return real(*a, **k)

    monkeypatch.setattr(fm, "compose", slow_compose)
    m = _additive_kan()
    X, y = _data(2)
    res = symbolic(m, (X, y), library="x,x^2,sin", samples=200, n_points=51, refit_steps=10,
                   sympy_seconds=0.5, progress=False)
    notes = res.details["routes"][0]["edges"]["notes"]
    assert res.route in ("structure", "rational") and any("did not finish" in n for n in notes)
    with pytest.raises(SizeLimitError, match="did not finish"):
        symbolic(m, (X, y), library="x,x^2,sin", samples=200, n_points=51, refit_steps=10,
                 sympy_seconds=0.5, structure=False, progress=False)


def test_a_non_finite_candidate_is_never_returned(monkeypatch):
    x1, x2 = fm.input_symbols(2)
    bad = sympy.log(x1 - 10) + x2  # NaN on the whole box

    def edges_nan(adapter, edge_map, ctx):
        return [bad], [{"raw": str(bad), "snapped": False, "notes": []}]

    monkeypatch.setattr(rt, "edge_route", edges_nan)
    m = _additive_kan()
    X, y = _data(2)
    with pytest.warns(RuntimeWarning, match="not finite"):
        res = symbolic(m, (X, y), library="x,x^2,sin", samples=200, n_points=51,
                       refit_steps=10, rule="tolerance", progress=False)
    assert res.route in ("structure", "rational") and np.isfinite(res.formula_r2_model)
    assert res.details["routes"][0]["edges"]["r2_model"] is None
    with pytest.raises(NonFiniteError, match="finite"):
        symbolic(m, (X, y), library="x,x^2,sin", samples=200, n_points=51, refit_steps=10,
                 structure=False, progress=False)
    assert issubclass(NonFiniteError, InspectKitError)


def test_the_deadline_skips_ticks_inside_finalisers():
    """An Expired raised in a ``__del__`` or a gc callback would be lost ("Exception ignored
    in ...", a failed test under pytest): the handler recognises the frame and waits for the
    next tick."""
    import gc
    import sys

    seen = []

    class Dying:
        def __del__(self):
            seen.append(deadline._in_finaliser(sys._getframe()))

    Dying()
    assert seen == [True]
    assert not deadline._in_finaliser(sys._getframe())

    def on_gc(phase, info):  # a gc.callbacks function (hypothesis registers one)
        if phase == "start":
            seen.append(deadline._in_finaliser(sys._getframe()))

    gc.callbacks.append(on_gc)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(on_gc)
    assert seen[1:] == [True]
