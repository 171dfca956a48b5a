"""The three routes from a KAN to a formula, each bounded in time, and the choice between them.

* **edges** (:func:`edge_route`): compose the chosen edge fits through the adapter's node maps
  (:func:`analyses.symbolic.formula.compose`), refit every constant jointly to the network,
  polish (snap, refit, simplify).
* **structure** (:func:`structure_route`): query the network as an oracle for two-variable
  symmetries (:mod:`.symmetry`; the search then runs on the reduced variables first), separable
  blocks and generalised additivity (:mod:`.structure`, :mod:`.additive`), polish the same way.
* **rational** (:func:`rational_route`): a sparse ``P/Q`` or ``sqrt(P/Q)`` of the inputs (and
  of the structure route's reduced variables, with ``cos w, sin w`` of a difference) fitted
  by linear least squares to the targets (:mod:`.rational`), offered only when it fits them at
  least as well as the network does; polish the same way.

The edge and structure routes end with :func:`without_limits` (:mod:`.degenerate`; a rational
has no Taylor regime to leave): a function left in its Taylor
regime becomes the polynomial it imitates when that fits the data as well.

Every sympy step runs under :func:`analyses.symbolic.deadline.call` with ``seconds`` (and
``simplify`` with its own limit): a step that does not finish falls back (an unrefitted or
unsnapped formula; no candidate from a route whose composition did not finish) and the route
records what happened in ``notes``.

:func:`prefer` decides between candidates: fewer operations with ``1 - R^2`` at most twice the
other's (+1e-9), or equal-or-more operations with ``1 - R^2`` under half the other's (R^2 against
the data when there are targets, else against the network, on the fitting inputs).
:func:`choose_candidate` considers finite candidates only, so no non-finite formula is returned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import OptionError

from . import deadline
from . import formula as fm
from .degenerate import reduce_limits
from .library import Primitive


@dataclasses.dataclass
class Context:
    """What both routes need for output ``k`` (float64 tensors)."""

    syms: list[Any]
    X: torch.Tensor  # (N, n) fitting inputs
    y_net: torch.Tensor  # (N, outputs) network on X
    y_dat: torch.Tensor | None  # (N, outputs) targets, or None
    sub: torch.Tensor  # row indices used by refits and snapping
    seconds: float
    simplify_seconds: float
    refit_steps: int
    snap: bool
    snap_min_r2: float

    def target(self, k: int) -> torch.Tensor:
        return self.y_dat[:, k] if self.y_dat is not None else self.y_net[:, k]


def bounded_refit(expr: Any, ctx: Context, k: int, notes: list[str]) -> Any:
    out = deadline.call(fm.refit, expr, ctx.syms, ctx.X[ctx.sub], ctx.y_net[ctx.sub, k],
                        steps=ctx.refit_steps, seconds=ctx.seconds, fallback=None)
    if out is None:
        notes.append(f"refit did not finish in {ctx.seconds:g} s; constants as fitted")
        return expr
    return out


def polish(expr: Any, ctx: Context, k: int, notes: list[str]) -> tuple[Any, bool]:
    """:func:`analyses.symbolic.formula.polish` within ``2 seconds + simplify_seconds``; on
    timeout the expression as it came in."""
    yd = ctx.y_dat[ctx.sub, k] if ctx.y_dat is not None else None
    out = deadline.call(fm.polish, expr, ctx.syms, ctx.X[ctx.sub], ctx.y_net[ctx.sub, k], yd,
                        X_check=ctx.X, snap_constants=ctx.snap, snap_min_r2=ctx.snap_min_r2,
                        refit_steps=ctx.refit_steps, simplify_seconds=ctx.simplify_seconds,
                        seconds=2 * ctx.seconds + 2 * ctx.simplify_seconds, fallback=None)
    if out is None:
        notes.append("snapping/simplification did not finish; formula as refitted")
        return expr, False
    return out


def score(expr: Any, ctx: Context, k: int, X: torch.Tensor | None = None,
          y_net: torch.Tensor | None = None, y_dat: torch.Tensor | None = None) -> dict[str, Any]:
    """R^2 against the network and the data (on ``X``, default the fitting inputs), and the op
    count; ``None`` where the formula is not finite or its evaluation did not finish."""
    X = ctx.X if X is None else X
    yn = ctx.y_net[:, k] if y_net is None else y_net
    yd = (ctx.y_dat[:, k] if ctx.y_dat is not None else None) if y_dat is None else y_dat

    def run() -> dict[str, Any]:
        with np.errstate(all="ignore"):
            p = fm.evaluate(expr, ctx.syms, X)
        r_net = fm.r2_score(p, yn)
        r_dat = fm.r2_score(p, yd) if yd is not None else None
        return {"r2_model": r_net if math.isfinite(r_net) else None,
                "r2_data": r_dat if r_dat is not None and math.isfinite(r_dat) else None,
                "n_ops": fm.op_count(expr)}

    return deadline.call(run, seconds=ctx.seconds,
                         fallback={"r2_model": None, "r2_data": None, "n_ops": None})


def fit_r2(s: dict[str, Any], has_data: bool) -> float | None:
    return s.get("r2_data") if has_data else s.get("r2_model")


def edge_route(adapter: Any, edge_map: dict[tuple[int, int, int], Callable], ctx: Context,
               ) -> tuple[list[Any] | None, list[dict[str, Any]]]:
    """Composed, refitted and polished formula per output (None when composition did not
    finish), and per output ``{"formula", "raw", "snapped", "notes"}``."""
    outs = deadline.call(fm.compose, adapter, edge_map, seconds=ctx.seconds, fallback=None)
    n_out = ctx.y_net.shape[1]
    if outs is None:
        msg = (f"composing the edge formulas did not finish in {ctx.seconds:g} s (the network is "
               "too large to write out; prune more or use fewer hidden nodes)")
        return None, [{"formula": None, "notes": [msg]} for _ in range(n_out)]
    final, info = [], []
    for k, o in enumerate(outs):
        notes: list[str] = []
        r = bounded_refit(o, ctx, k, notes)
        e, did = polish(r, ctx, k, notes)
        e = finite_or_earlier([("polished", e), ("refitted", r), ("composed", o)], ctx, notes)
        e = without_limits(e, ctx, k, notes)
        final.append(e)
        info.append({"raw": str(o), "snapped": did, "notes": notes})
    return final, info


def without_limits(expr: Any, ctx: Context, k: int, notes: list[str]) -> Any:
    """``expr`` with its degenerate-limit nodes replaced by Taylor polynomials
    (:func:`analyses.symbolic.degenerate.reduce_limits`), refitted and polished, when that fits
    as well (:func:`prefer`: no more than twice the error with fewer operations); else ``expr``.
    Bounded by ``ctx.seconds`` for the reduction."""
    red = deadline.call(reduce_limits, expr, ctx.syms, ctx.X[ctx.sub], seconds=ctx.seconds,
                        fallback=expr)
    if red == expr:
        return expr
    sub_notes: list[str] = []
    r = bounded_refit(red, ctx, k, sub_notes)
    e, _ = polish(r, ctx, k, sub_notes)
    e = finite_or_earlier([("polished", e), ("refitted", r)], ctx, sub_notes)
    has_data = ctx.y_dat is not None
    new, old = score(e, ctx, k), score(expr, ctx, k)
    if prefer({"r2": fit_r2(new, has_data), "n_ops": new["n_ops"] or 0},
              {"r2": fit_r2(old, has_data), "n_ops": old["n_ops"] or 0}):
        notes.append(f"degenerate limits reduced to Taylor polynomials: {str(expr)[:120]}")
        return e
    return expr


def finite_or_earlier(stages: list[tuple[str, Any]], ctx: Context, notes: list[str]) -> Any:
    """The first stage whose formula is finite on every fitting input (a refit or a snap fitted
    on a subsample can leave a domain on the rest), else the last; the fallback is noted."""
    for n, (name, e) in enumerate(stages):
        ok = deadline.call(lambda e=e: bool(torch.isfinite(fm.evaluate(e, ctx.syms, ctx.X)).all()),
                           seconds=ctx.seconds, fallback=False)
        if ok:
            if n:
                notes.append(f"the {stages[0][0]} formula is not finite on the data; using the "
                             f"{name} one")
            return e
    return stages[-1][1]


#: a symmetry is applied when moving the data along its curves changes the network by at most
#: this many times the network's own relative error on the data (true symmetries of the
#: benchmark KANs: 0.65-1.64 times; false ones from 4 times)
SYMMETRY_FACTOR = 2.5
#: the search on the original variables is skipped when the reduced formula leaves at most this
#: fraction of the network's own unexplained variance on the data (a formula only as good as
#: the network can be an imitation: II.11.27's reduced search returned one at R^2 0.99998)
EXACT_GAIN = 1e-2


def structure_route(adapter: Any, ctx: Context, k: int, lib: Sequence[Primitive], seed: int,
                    ) -> tuple[Any, dict[str, Any]]:
    """Separable-structure candidate for output ``k`` (see :mod:`.structure`), polished.

    When the network has two-variable symmetries (:mod:`.symmetry`: it depends on ``x_i, x_j``
    only through ``x_i - x_j``, ``x_i + x_j``, ``x_i / x_j`` or ``x_i x_j``, to
    :data:`SYMMETRY_FACTOR` times its own relative error), the search also runs on the reduced
    variables first. When the (reduced) network is then homogeneous of a nonzero degree ``p``
    in a pair (``f(l x_i, l x_j) = l^p f``, :func:`analyses.symbolic.symmetry.scale_all`),
    the search runs on ``f / x_i^p`` and on ``f / x_j^p`` as functions of ``x_i / x_j`` too.
    The search on the original variables runs last. The runs stop at the first formula that
    leaves at most :data:`EXACT_GAIN` of the network's unexplained variance on the data, and
    the best polished formula is returned (:func:`prefer`)."""
    from .symmetry import reduce_all, scale_all

    has_data = ctx.y_dat is not None
    target = ctx.target(k)
    # separability tolerance: 10x the network's own relative error on the data (>= 1e-3); the
    # generalised-additivity gate is loose (gradients are rough), its candidate is then checked
    # against the network (structure.separable_formula, additive.generalised_formula)
    r2_net = fm.r2_score(ctx.y_net[:, k], target) if has_data else 1.0
    rel = math.sqrt(max(0.0, 1.0 - r2_net))
    tol = min(0.05, max(1e-3, 10.0 * rel))

    def net(Z: torch.Tensor) -> torch.Tensor:
        return adapter.forward_from_edges(Z)[:, k].double()

    noise = float(((ctx.y_net[:, k] - target) ** 2).mean()) if has_data else 0.0
    sym_tol = SYMMETRY_FACTOR * max(rel, 2e-3) if has_data else 0.01
    reduced = deadline.call(reduce_all, net, ctx.X, ctx.syms, tol=sym_tol, seconds=ctx.seconds,
                            fallback=None)
    runs = []
    fr, Xr, exprs, applied = reduced if reduced is not None else (net, ctx.X, list(ctx.syms), [])
    if applied:
        runs.append(("reduced", fr, Xr, exprs, [dataclasses.asdict(a) for a in applied], None))
    scaled = deadline.call(scale_all, fr, Xr, exprs, lib, tol=sym_tol, seconds=ctx.seconds,
                           fallback=[]) if Xr.shape[1] > 1 else []
    for n, (fs, Xs, exprs_s, factor, sc) in enumerate(scaled):
        runs.append((f"scaled{n + 1}", fs, Xs, exprs_s,
                     [dataclasses.asdict(a) for a in applied] + [dataclasses.asdict(sc)], factor))
    runs.append(("direct", net, ctx.X, list(ctx.syms), [], None))
    best: tuple[Any, dict[str, Any]] | None = None
    tried = {}
    for name, fn, X, exprs, applied, factor in runs:
        e, out = _structure_search(fn, X, exprs, ctx, k, lib, seed, tol, noise, factor)
        if applied:
            out["symmetries"] = applied
        tried[name] = {"formula": out.get("formula"), "error": out.get("error")}
        if e is None:
            if best is None or best[0] is None:
                best = (None, out)
            continue
        sc = score(e, ctx, k)
        out["_score"] = {"r2": fit_r2(sc, has_data), "n_ops": sc["n_ops"] or 0}
        if best is None or best[0] is None or prefer(out["_score"], best[1]["_score"]):
            best = (e, out)
        if name != "direct" and has_data and out["_score"]["r2"] is not None \
                and 1.0 - out["_score"]["r2"] <= EXACT_GAIN * (1.0 - r2_net):
            break  # fits the data far better than the network does: the direct search is moot
    e, out = best
    out.pop("_score", None)
    if len(runs) > 1:
        out["searches"] = tried
    # for the rational route (popped by the caller: not part of the record)
    out["_reductions"] = [(exprs, factor) for name, _, _, exprs, _, factor in runs
                          if name != "direct"]
    return e, out


def rational_route(ctx: Context, k: int, reductions: Sequence[tuple[list[Any], Any]] = (),
                   ) -> tuple[Any, dict[str, Any]]:
    """Sparse rational candidate for output ``k`` (:mod:`.rational`), fitted to the targets
    (the data when there are, else the network) and offered only when its held-out MSE is at
    most the network's own MSE against the data and :data:`RATIONAL_GATE` ``var y`` (``1e-6
    var y`` without data: a fit of a network is never exact); polished
    (snapped, refitted) like the other routes.

    ``reductions``: the structure route's reduced variables ``(exprs, factor)`` (the network is
    ``factor`` times a function of the expressions ``exprs`` of the inputs,
    :func:`structure_route`). The rational is fitted on the inputs and on each reduction
    (``y / factor`` as a rational of ``exprs``, and of ``cos w, sin w`` for each difference or
    sum ``w = x_i -+ x_j`` among them: the law of cosines
    ``sqrt(x1^2 + x2^2 - 2 x1 x2 cos(x3 - x4))`` is ``x2 sqrt(r^2 + 1 - 2 r cos w)``, a root of
    a polynomial of ``r = x1/x2`` and ``cos w``; ``(x1 - x2 x4)/sqrt(1 - x2^2/x3^2)`` is
    ``x4`` times the root of a degree-4/2 rational in ``x1/x4, x2, x3``, degree 6 in the raw
    inputs). The fit with the lowest held-out criterion (``bic``, on ``y`` itself) is
    offered."""
    from .rational import MAX_DEGREE, rational_fit

    target = ctx.target(k)
    var = float(target.var())
    gate = (min(float(((ctx.y_net[:, k] - target) ** 2).mean()), RATIONAL_GATE * var)
            if ctx.y_dat is not None else 1e-6 * var)
    sets = [("inputs", ctx.X, list(ctx.syms), {}, None)]
    for n, (exprs, factor) in enumerate(reductions):
        made = _reduced_inputs(exprs, factor, ctx)
        if made is not None:
            sets.append((f"reduction{n + 1}", *made))
    fits, errors = [], []
    for name, X, local, back, scale in sets:
        tops = [1 if str(s).startswith("sin_") else MAX_DEGREE for s in local]
        found = deadline.call(rational_fit, X, target, local, gate=gate, scale=scale,
                              max_exponents=tops, seconds=4 * ctx.seconds, fallback=None)
        if found is None:
            errors.append(f"the rational fit on the {name} did not finish in "
                          f"{4 * ctx.seconds:g} s")
            continue
        expr, info = found
        if expr is not None:
            fits.append((info["bic"], name, expr.xreplace(back) if back else expr, info))
    if not fits:
        if errors and len(errors) == len(sets):
            return None, {"error": errors[0]}
        return None, {"formula": None, "errors": errors}
    _, name, expr, info = min(fits, key=lambda f: f[0])
    if name != "inputs":
        factor = reductions[int(name.removeprefix("reduction")) - 1][1]
        expr = factor * expr if factor is not None else expr
    info = {**info, "on": name}
    notes: list[str] = []
    e, _ = polish(expr, ctx, k, notes)
    e = finite_or_earlier([("polished", e), ("constructed", expr)], ctx, notes)
    return e, {"info": info, "formula": str(e), "notes": notes}


def _reduced_inputs(exprs: list[Any], factor: Any, ctx: Context,
                    ) -> tuple[torch.Tensor, list[Any], dict[Any, Any], torch.Tensor | None] | None:
    """Columns ``exprs`` (and ``cos w, sin w`` of each ``w = x_i -+ x_j`` among them) on the
    fitting inputs, their local symbols, the map back to the inputs, and ``factor`` on the
    inputs; None when a column is not finite or the factor vanishes."""
    import sympy

    N = ctx.X.shape[0]

    def on_inputs(e: Any) -> torch.Tensor:
        with np.errstate(all="ignore"):
            v = fm.evaluate(e, ctx.syms, ctx.X)
        return torch.as_tensor(v, dtype=torch.float64).expand(N)

    cols, local, back = [], [], {}
    for c, e in enumerate(exprs):
        w = sympy.Symbol(f"w{c + 1}")
        cols.append(on_inputs(e))
        local.append(w)
        back[w] = e
        terms = sympy.Add.make_args(e)
        if len(terms) == 2 and all(t.is_Symbol or (-t).is_Symbol for t in terms):
            for name, fn in (("cos", sympy.cos), ("sin", sympy.sin)):
                s = sympy.Symbol(f"{name}_w{c + 1}")
                cols.append(on_inputs(fn(e)))
                local.append(s)
                back[s] = fn(e)
    X = torch.stack(cols, 1)  # sin columns: at most power 1 (rational_route)
    scale = on_inputs(factor) if factor is not None else None
    if not bool(torch.isfinite(X).all()) or (scale is not None and not bool(
            (torch.isfinite(scale) & (scale.abs() > 0)).all())):
        return None
    return X, local, back, scale


def _structure_search(fn: Callable, X: torch.Tensor, exprs: list[Any], ctx: Context, k: int,
                      lib: Sequence[Primitive], seed: int, tol: float, noise: float,
                      factor: Any = None) -> tuple[Any, dict[str, Any]]:
    """:func:`analyses.symbolic.structure.separable_formula` of ``fn`` on data ``X`` whose
    columns are the expressions ``exprs`` of the inputs (times ``factor`` when the network is
    ``factor * fn``), then arbitration, refit and polish."""
    import sympy

    from .structure import separable_formula

    has_data = ctx.y_dat is not None
    local = list(ctx.syms) if list(exprs) == list(ctx.syms) else \
        [sympy.Symbol(f"w{c + 1}") for c in range(X.shape[1])]
    back = {w: ex for w, ex in zip(local, exprs) if w is not ex}
    notes: list[str] = []
    variants: list[Any] = []
    try:
        found = deadline.call(separable_formula, fn, X, lib, local, tol=tol, seed=seed,
                              noise_mse=noise, tol_general=0.2,
                              alternatives=variants if has_data else None,
                              seconds=4 * ctx.seconds, fallback=None)
    except (OptionError, ValueError, RuntimeError) as err:  # a failed candidate is not fatal
        return None, {"error": f"{type(err).__name__}: {err}"}
    if found is None:
        return None, {"error": f"the structure search did not finish in {4 * ctx.seconds:g} s"}
    expr, info = found
    if expr is None:
        return None, {"info": info, "formula": None}
    if has_data and X.shape[1] == 1:
        variants[:0] = _leaf_on_data(exprs[0], factor, ctx, k, lib, local[0])
    if back:
        expr = expr.xreplace(back)
        variants = [v.xreplace(back) for v in variants]
    if factor is not None:
        expr, variants = factor * expr, [factor * v for v in variants]
    if variants:
        expr, info["arbitration"] = arbitrate([expr, *variants[:MAX_VARIANTS]], ctx, k)
    expr = deadline.call(lambda: fm.fold_scale(fm.fold_pow(fm.fold_exp(expr))),
                         seconds=ctx.seconds, fallback=expr)  # one constant per scale
    r = bounded_refit(expr, ctx, k, notes)
    e, _ = polish(r, ctx, k, notes)
    e = finite_or_earlier([("polished", e), ("refitted", r), ("constructed", expr)], ctx, notes)
    e = without_limits(e, ctx, k, notes)
    return e, {"info": info, "formula": str(e), "notes": notes}


def _leaf_on_data(w: Any, factor: Any, ctx: Context, k: int, lib: Sequence[Primitive],
                  var: Any) -> list[Any]:
    """When the search is down to one variable ``w`` (an input or a combination of them), the
    data are a one-variable data set ``(w(x_i), y_i / factor(x_i))``: its fit
    (:func:`analyses.symbolic.univariate.fit_univariate`, on the ``ctx.sub`` rows sorted by
    ``w``) and runners-up, in ``var``, for the arbitration. A leaf fitted to the network
    starts from the network's error (I.30.5 at seed 2: ``asin(w)`` fitted there stalled at the
    edge of its domain, ``asin(7e-7 w + 0.999999)``); fitted to noise-free data it is exact."""
    from .univariate import fit_univariate

    def run() -> list[Any]:
        X = ctx.X[ctx.sub]
        with np.errstate(all="ignore"):
            wv = fm.evaluate(w, ctx.syms, X)
            y = ctx.y_dat[ctx.sub, k] / (fm.evaluate(factor, ctx.syms, X) if factor is not None
                                         else 1.0)
        ok = torch.isfinite(wv) & torch.isfinite(y)
        if int(ok.sum()) < 20:
            return []
        order = torch.argsort(wv[ok])
        e, info = fit_univariate(wv[ok][order], y[ok][order], lib, var, alternatives=8)
        return [e, *[a for a, _ in info.pop("_alternatives", [])]]

    return deadline.call(run, seconds=ctx.seconds, fallback=[])


#: the rational route offers no fit leaving more than this fraction of the variance (a
#: relative RMS error of 1e-2): beyond it a rational is an approximation, not a law
RATIONAL_GATE = 1e-4
#: at most this many runner-up formulas are refitted to the data by :func:`arbitrate`
MAX_VARIANTS = 96
#: how many of them (the best after a short refit on a subsample) get the full refit
FULL_REFITS = 6
#: a runner-up replaces the network's choice only when its data MSE is below this fraction of
#: the choice's (refits of many redundant constants stall at a few times apart; a true form
#: against its imitation is orders of magnitude apart on noise-free data)
DECISIVE = 1e-2


#: fits whose data MSE is within this many standard errors of the best one's (an MSE of ``n``
#: residuals at the noise floor has relative standard error ``sqrt(2 / n)``) are ties for
#: :func:`arbitrate`, settled by the number of operations
NOISE_BAND = 2.0


def arbitrate(cands: list[Any], ctx: Context, k: int) -> tuple[Any, list[dict[str, Any]]]:
    """The candidate the *data* prefer among formulas the network could not tell apart.

    Each candidate's constants are refitted to the targets: first briefly (20 Gauss-Newton
    trust-region steps on up to 256 of the ``ctx.sub`` rows), then fully
    (``ctx.refit_steps`` on ``ctx.sub``) for the :data:`FULL_REFITS` best and for the
    network's own choice (candidate 0). The MSE against the targets is taken on every fitting
    input. When a runner-up's MSE is at most :data:`DECISIVE` times the network choice's,
    the one with the fewest operations among such runners-up within ``2 MSE_best + 1e-12
    var(y)`` wins, ties to the first. Otherwise the fully refitted candidate with the fewest
    operations whose MSE is within :data:`NOISE_BAND` standard errors of the best,
    ``MSE <= MSE_best (1 + NOISE_BAND sqrt(2/n))`` over ``n`` inputs, wins, ties to the first
    (the network's choice): a difference the noise can explain buys no operations.

    A network carries its own error, so an imitation (``exp(1/sqrt(a x1^2/x2^2 + b))``) can
    match it as well as the true form (``exp(atanh(x2/x1))``). Noise-free data separate the
    two by orders of magnitude; on noisy data both reach the noise floor, and the one with
    fewer operations is kept. Returns the winning candidate as it came in (refitted to the network
    later, like any other) and a record per candidate. Every refit runs within
    ``ctx.seconds``.
    """
    y = ctx.target(k)
    var_y = float(y.var()) if len(y) > 1 else 0.0
    quick_rows = ctx.sub[torch.linspace(0, len(ctx.sub) - 1, min(256, len(ctx.sub))).long()]

    def mse_after(c: Any, rows: torch.Tensor, steps: int, full: bool) -> float:
        def run() -> float:
            r = fm.refit(fm.fold_pow(c), ctx.syms, ctx.X[rows], y[rows], steps=steps,
                         method="lbfgs" if full else "lsq")
            with np.errstate(all="ignore"):
                mse = float(((fm.evaluate(r, ctx.syms, ctx.X) - y) ** 2).mean())
            return mse if math.isfinite(mse) else math.inf

        return deadline.call(run, seconds=ctx.seconds, fallback=math.inf)

    rows = [{"candidate": n, "formula": str(c)[:300],
             "mse_quick": mse_after(c, quick_rows, 20, False)} for n, c in enumerate(cands)]
    order = sorted(rows[1:], key=lambda r: r["mse_quick"])[:FULL_REFITS]
    full = [rows[0], *order]
    for r in full:
        r["mse_data"] = mse_after(cands[r["candidate"]], ctx.sub, ctx.refit_steps, True)
        r["n_ops"] = fm.op_count(cands[r["candidate"]])
    base = rows[0]["mse_data"]
    decisive = [r for r in full[1:] if math.isfinite(r["mse_data"])
                and (not math.isfinite(base) or r["mse_data"] <= DECISIVE * base)]
    if not decisive:
        # nothing decisive: among the fits the data cannot tell apart from the best (noise),
        # the fewest operations, the network's choice on ties
        finite = [r for r in full if math.isfinite(r["mse_data"])]
        if not finite:
            rows[0]["chosen"] = True
            return cands[0], rows
        best = min(r["mse_data"] for r in finite)
        band = best * (1.0 + NOISE_BAND * math.sqrt(2.0 / max(1, len(y)))) + 1e-12 * var_y
        win = min((r for r in finite if r["mse_data"] <= band),
                  key=lambda r: (r["n_ops"], r["candidate"]))
        win["chosen"] = True
        return cands[win["candidate"]], rows
    best = min(r["mse_data"] for r in decisive)
    ok = [r for r in decisive if r["mse_data"] <= 2.0 * best + 1e-12 * var_y]
    win = min(ok, key=lambda r: (r["n_ops"], r["candidate"]))
    win["chosen"] = True
    return cands[win["candidate"]], rows


def prefer(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether candidate ``new`` beats ``old`` (rule in the module docstring); each holds
    ``r2`` (None = not finite) and ``n_ops``."""
    if new.get("r2") is None or not math.isfinite(new["r2"]):
        return False
    if old.get("r2") is None or not math.isfinite(old["r2"]):
        return True
    e_new, e_old = max(0.0, 1.0 - new["r2"]), max(0.0, 1.0 - old["r2"])
    if new["n_ops"] < old["n_ops"]:
        return e_new <= 2.0 * e_old + 1e-9
    return e_new < 0.5 * e_old


def choose_candidate(cands: list[tuple[str, Any, dict[str, Any]]], has_data: bool,
                     ) -> tuple[str, Any, dict[str, Any]] | None:
    """The returned ``(route, expr, score)`` among the finite candidates (formula finite on
    every fitting input): the first, replaced by a later one when :func:`prefer` says so; None
    when no candidate is finite."""
    best = None
    for c in cands:
        if c[1] is None or c[2].get("r2_model") is None:
            continue
        if best is None or prefer({"r2": fit_r2(c[2], has_data), "n_ops": c[2]["n_ops"] or 0},
                                  {"r2": fit_r2(best[2], has_data), "n_ops": best[2]["n_ops"] or 0}):
            best = c
    return best


__all__ = ["Context", "arbitrate", "choose_candidate", "edge_route", "prefer", "rational_route",
           "score", "structure_route"]
