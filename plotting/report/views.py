"""What each Result type shows on a page: a sentence, interactive charts, a table, extras.

A :class:`View` holds the parts that differ between analyses; :func:`body` puts every section
together the same way: the sentence, the key numbers (:meth:`Result.headline`, with their
standard errors), the extras, the interactive charts, the main static figure
(:attr:`Result.main_figure`), the table (collapsed) and the provenance (collapsed). A Result type
without a view gets the generic one (numbers, figure, table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from . import html as H
from .figures import inline, main_figure
from .svg import Series, chart, heatmap

#: table rows shown on a page (the Result keeps them all)
MAX_ROWS = 200


@dataclasses.dataclass
class View:
    """The parts of a section that depend on the Result type."""

    intro: str = ""
    charts: list[str] = dataclasses.field(default_factory=list)
    extra: list[str] = dataclasses.field(default_factory=list)
    columns: list[str] | None = None
    stderr: dict[str, str] = dataclasses.field(default_factory=dict)


VIEWS: dict[str, Callable[[Any], View]] = {}


def view(name: str) -> Callable[[Callable[[Any], View]], Callable[[Any], View]]:
    """Register the view of the Result type called ``name``."""
    def wrap(fn: Callable[[Any], View]) -> Callable[[Any], View]:
        VIEWS[name] = fn
        return fn
    return wrap


def view_of(result: Any) -> View:
    """The registered view of ``result``'s type (or of a base type), else a plain one."""
    for cls in type(result).__mro__:
        if cls.__name__ in VIEWS:
            return VIEWS[cls.__name__](result)
    return View(stderr=dict(getattr(result, "stderr_of", {})))


def rows_of(result: Any) -> list[dict[str, Any]]:
    try:
        return list(result.rows())
    except NotImplementedError:
        return []


def body(result: Any, *, figure: bool = True) -> str:
    """A section's HTML for ``result`` (see the module docstring)."""
    v = view_of(result)
    parts = [f'<p class="intro">{H.esc(v.intro)}</p>' if v.intro else "",
             H.numbers(result.headline()), *v.extra]
    if v.charts:
        parts.append('<div class="charts">' + "".join(v.charts) + "</div>")
    if figure:
        parts.append(static_figure(result))
    rows = rows_of(result)
    if rows:
        parts.append(H.details(f"table: {len(rows)} rows", H.table(
            rows, v.columns, stderr=v.stderr, max_rows=MAX_ROWS), cls="rows"))
    parts.append(H.provenance(result.provenance))
    return "\n".join(p for p in parts if p)


def static_figure(result: Any) -> str:
    """The main figure as an inline image ('' without one; a note when drawing it failed)."""
    try:
        fig = main_figure(result)
    except Exception as exc:  # a figure must not take the numbers down with it
        return H.error("figure failed", f"{type(exc).__name__}: {exc}")
    if fig is None:
        return ""
    return '<div class="static">' + inline(fig, alt=f"{result.analysis}: main figure") + "</div>"


def _f(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float).ravel()]


@view("ESDResult")
def _esd(r: Any) -> View:
    ok = [row for row in r.layers if row["status"] == "success"]
    tips = [f"{row['name']}: alpha = {H.fmt_uncertain(row['alpha'], row.get('sigma'))}, "
            f"D = {H.fmt(row.get('D'))}" for row in ok]
    charts = [chart([Series("alpha", list(range(len(ok))), [row["alpha"] for row in ok],
                            style="points", err=[row.get("sigma") or 0.0 for row in ok],
                            tips=tips)],
                    title="power-law alpha per weight matrix (± MLE standard error)",
                    xlabel="matrix (forward order)", ylabel="alpha", key="esd-alpha",
                    xticks=list(range(len(ok))))] if ok else []
    return View(
        intro="Eigenvalue spectra of every weight matrix's correlation matrix W^T W (no data): "
              "the power-law exponent alpha of each tail with its standard error, norms and "
              "ranks (WeightWatcher's metrics; alpha in [2, 6] is the usual trained range).",
        charts=charts, stderr={"alpha": "sigma"},
        columns=["name", "shape", "status", "alpha", "sigma", "D", "num_tail", "xmin",
                 "log_norm", "log_spectral_norm", "stable_rank", "mp_softrank", "num_spikes",
                 "flag", "skip_reason"])


@view("HessianResult")
def _hessian(r: Any) -> View:
    ev = _f(r.eigenvalues)
    order = np.argsort(ev)[::-1]
    charts = [chart([Series("eigenvalue", [int(k) + 1 for k in range(len(ev))],
                            [ev[k] for k in order], style="points",
                            tips=[f"lambda_{k + 1} = {H.fmt(ev[i])} (residual "
                                  f"{H.fmt(float(r.residuals[i]))})" for k, i in enumerate(order)])],
                    title=f"{r.curvature} eigenvalues ({r.which}), by rank", xlabel="rank",
                    ylabel="eigenvalue", key="hessian-eigenvalues")] if ev else []
    d = r.density or {}
    if d.get("grid") is not None and d.get("values") is not None:
        charts.append(chart([Series("density", _f(d["grid"]), _f(d["values"]), style="line")],
                            title="spectral density (stochastic Lanczos quadrature)",
                            xlabel="eigenvalue", ylabel="density", ylog=True,
                            key="hessian-density"))
    return View(
        intro=f"Curvature ({r.curvature}) of the loss at the trained weights over "
              f"{r.n_samples:,} samples: extreme eigenvalues by Lanczos with their residuals, the "
              "trace with its standard error and, when asked, the spectral density.",
        charts=charts)


@view("OutliersResult")
def _outliers(r: Any) -> View:
    ev = _f(r.ggn_eigenvalues)
    series = []
    for kind in ("class", "cross-class", "bulk"):
        idx = [i for i, k in enumerate(r.kinds) if k == kind]
        if idx:
            series.append(Series(kind, [i + 1 for i in idx], [ev[i] for i in idx], style="points",
                                 tips=[f"GGN lambda_{i + 1} = {H.fmt(ev[i])} ({kind}, class "
                                       f"{r.attribution[i]['class']})" for i in idx]))
    charts = [chart(series, title="GGN eigenvalues by rank and kind (log scale)", xlabel="rank",
                    ylabel="eigenvalue", ylog=True, key="outliers-ggn")] if series else []
    return View(intro="Papyan's structure of the Gauss-Newton spectrum of a classifier: C class "
                      "outliers and C(C-1) cross-class outliers above a bulk, each eigenvector "
                      "attributed to the class means it lies in.", charts=charts)


@view("LandscapeResult")
def _landscape(r: Any) -> View:
    loss = np.asarray(r.loss, dtype=float)
    kind = r.directions_info.get("kind", "random")
    if r.dims == 1:
        series = [Series("loss", _f(r.axes[0]), _f(loss), style="both")]
        charts = [chart(series, title="loss along the direction", xlabel=r.axis_label(0),
                        ylabel="loss", key="landscape-line")]
        if r.accuracy is not None:
            charts.append(chart([Series("accuracy", _f(r.axes[0]), _f(r.accuracy))],
                                title="accuracy along the direction", xlabel=r.axis_label(0),
                                ylabel="accuracy", key="landscape-accuracy"))
    else:
        charts = [heatmap(loss, r.axes[0], r.axes[1], title="loss on the plane (the cross "
                          "marks the trained weights)", xlabel=r.axis_label(0),
                          ylabel=r.axis_label(1), zlabel="loss", key="landscape-plane",
                          names=("a", "b"))]
    return View(intro=f"Training loss around the trained weights theta on a {r.dims}-D grid "
                      f"theta + a d1{' + b d2' if r.dims == 2 else ''} along {kind} directions "
                      f"({r.directions_info.get('norm', 'filter')}-normalised, Li et al. 2018).",
                charts=charts)


@view("LMCResult")
def _lmc(r: Any) -> View:
    charts = []
    for what in ("loss", "error"):
        series = []
        for path, c in r.curves.items():
            values = c.get(what)
            if values is None:
                continue
            for split, ys in values.items():
                series.append(Series(f"{path}, {split}", _f(c["t"]), _f(ys), style="both"))
        if series:
            charts.append(chart(series, title=f"{what} along (1 - t) A + t B", xlabel="t",
                                ylabel=what, key=f"lmc-{what}"))
    return View(intro="Linear mode connectivity of the two checkpoints: loss and error along the "
                      "straight line between them and the barriers (mean: above the mean of the "
                      "ends; linear: above the line joining them).", charts=charts)


@view("AttentionResult")
def _attention(r: Any) -> View:
    xs, ys, tips = [], [], []
    for i, lay in enumerate(r.layers):
        for h in range(lay.heads):
            xs.append(i + (h + 1) / (lay.heads + 1) - 0.5)
            ys.append(float(lay.entropy[h]))
            tips.append(f"{lay.name} head {h}: entropy {H.fmt(float(lay.entropy[h]))}")
    charts = [chart([Series("entropy", xs, ys, style="points", tips=tips)],
                    title="attention entropy per head", xlabel="attention call (heads side by "
                    "side)", ylabel="entropy (nats)", key="attention-entropy",
                    xticks=list(range(len(r.layers))))] if xs else []
    return View(intro=f"Attention of every head on {r.n_samples} inputs: entropy, distance, "
                      "negative mass and row-sum deviation per head, the maps of one input and "
                      "the rollout.", charts=charts)


@view("SymbolicResult")
def _symbolic(r: Any) -> View:
    formula = f'<div class="formula"><code>{H.esc(r.formula)}</code></div>'
    return View(intro="Symbolic formula of the KAN: every edge fitted by c f(a x + b) + d from the "
                      "primitive library, composed, snapped and refitted; R^2 against the "
                      "network and the data.", extra=[formula])


@view("FourierResult")
def _fourier(r: Any) -> View:
    k = list(range(1, r.n_frequencies + 1))
    emb = _f(r.embedding_spectrum)
    key = set(r.key_frequencies)
    series = [Series("embedding norm", k, [emb[i] for i in k], style="both",
                     tips=[f"frequency {i}{' (key)' if i in key else ''}: norm {H.fmt(emb[i])}"
                           for i in k])]
    energy = _f(r.logit_energy)
    charts = [chart(series, title="embedding norm per frequency", xlabel="frequency k",
                    ylabel="norm", key="fourier-embedding"),
              chart([Series("logit energy", k, [energy[i] for i in k], style="both")],
                    title="share of the logits' variance per frequency (a + b directions)",
                    xlabel="frequency k", ylabel="share", key="fourier-logits")]
    return View(intro="Fourier audit of a modular-addition model (Nanda et al. 2023): the key "
                      "frequencies of the embedding, the logits' energy in their directions, and "
                      "the loss with only (restricted) or without (excluded) them.",
                charts=charts, extra=[f"<pre>{H.esc(r.summary())}</pre>"])


@view("NTKResult")
def _ntk(r: Any) -> View:
    ev = np.atleast_2d(np.asarray(r.eigenvalues, dtype=float))
    series = [Series(f"output {a}" if len(ev) > 1 else "eigenvalue", list(range(1, ev.shape[1] + 1)),
                     _f(row), style="both") for a, row in enumerate(ev[:6])]
    return View(intro=f"Empirical neural tangent kernel ({r.form}) on {r.n_samples} samples: its "
                      "top eigenvalues, trace and alignment with the targets.",
                charts=[chart(series, title="top NTK eigenvalues", xlabel="rank",
                              ylabel="eigenvalue", ylog=True, key="ntk-eigenvalues")])


@view("IntrinsicDimensionResult")
def _intrinsic(r: Any) -> View:
    series = [Series("accuracy", list(r.dims), _f(r.accuracy), style="both")]
    series += [Series(f"{k} threshold", [min(r.dims), max(r.dims)], [t, t], style="line")
               for k, t in r.thresholds.items()]
    return View(intro="Accuracy of training in random d-dimensional subspaces of the weights; "
                      "d_int90 is the smallest d reaching 90% of the full model (Li et al. 2018).",
                charts=[chart(series, title="accuracy against subspace dimension d",
                              xlabel="d", ylabel="accuracy", xlog=True, key="id-accuracy")])


@view("CheckpointInfo")
def _info(r: Any) -> View:
    arch = (f"zoo model <code>{H.esc(r.zoo['name'])}</code> with "
            f"<code>{H.esc(r.zoo.get('kwargs'))}</code>" if r.zoo else
            f"<code>{H.esc(r.model_class)}</code>")
    return View(intro="", extra=[f'<p class="summary">{H.esc(r.path)}: {arch}, class '
                                 f"<code>{H.esc(r.model_class)}</code></p>"],
                columns=["name", "shape", "dtype"])
