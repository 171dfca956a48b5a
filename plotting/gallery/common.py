"""Small helpers shared by the gallery sections: key numbers and one-axis figures."""

from __future__ import annotations

from typing import Any

from .context import Gallery

QUICK_HESSIAN = dict(top_k=3, which="largest", trace_budget=10, density_probes=1,
                     density_steps=12, density_deflate=2, blocks=None, tol=1e-3,
                     max_steps=24)


def hessian_options(g: Gallery, **full: Any) -> dict[str, Any]:
    """Hessian options for the gallery: ``full`` in a full run, tiny budgets with --quick."""
    opts = dict(full)
    if g.quick:
        opts.update(QUICK_HESSIAN)
    opts.setdefault("progress", False)
    opts.setdefault("seed", 0)
    return opts


def test_acc(ckpt: Any) -> float:
    hist = ckpt.meta.get("extra", {}).get("history") or [{}]
    return float(hist[-1].get("test_acc", float("nan")))


def hessian_numbers(h: Any) -> dict[str, Any]:
    ev = sorted(float(v) for v in h.eigenvalues)
    out: dict[str, Any] = {"top eigenvalue": ev[-1], "most negative eigenvalue": ev[0]}
    if h.trace is not None:
        out["trace (Hutch++)"] = f"{h.trace:.4g} ± {h.trace_stderr:.2g}"
    if h.density is not None and "negative_mass" in h.density:
        out["negative mass"] = f"{100 * h.density['negative_mass']:.2f}%"
    out["Hessian-vector products"] = h.hvp_count
    out["parameters"] = h.n_params
    return out


def lmc_numbers(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in r.rows():
        if row["split"] != "train" and "train" in r.splits:
            continue
        out[f"{row['split']} loss barrier, {row['path']} (mean / linear)"] = (
            f"{row['loss_barrier_mean']:.4g} / {row['loss_barrier_linear']:.4g}")
        if "error_barrier_mean" in row:
            out[f"{row['split']} error barrier, {row['path']} (points)"] = (
                f"{100 * row['error_barrier_mean']:.2f}")
    for row in r.rows():
        if row["split"] == "test" and "error_barrier_mean" in row:
            out[f"test error barrier, {row['path']} (points)"] = f"{100 * row['error_barrier_mean']:.2f}"
    if r.aligned:
        out["weight matching time"] = f"{1e3 * r.aligned['seconds']:.0f} ms"
        out["max abs logit change of permuted B"] = r.aligned["max_abs_delta_logit"]
    return out


def pca_numbers(res: Any) -> dict[str, Any]:
    info = res.directions_info or {}
    out: dict[str, Any] = {"centre loss": res.center_loss}
    ev = info.get("explained_variance") or info.get("explained_variance_ratio")
    if ev:
        out["explained variance (PC1, PC2)"] = ", ".join(f"{100 * float(v):.1f}%" for v in ev[:2])
    rel = (res.path or {}).get("relative_residual")
    if rel is not None:
        finite = [float(v) for v in rel if v is not None and v == v]
        if finite:
            out["largest relative path residual"] = f"{100 * max(finite):.1f}%"
    return out


def contour(plot_contour: Any, res: Any) -> Any:
    from plotting import style

    with style.context():
        fig, ax = style.figure(1, 1, width=5.0, height=4.2)
        plot_contour(res, ax)
    return fig


def esd_figure(g: Gallery, model: Any, stem: str, label: str) -> Any:
    """ESD alphas per layer and the largest layer's spectrum."""
    from analyses.esd import esd
    from plotting.esd import plot_summary

    with g.step(f"{label} · ESD"):
        res = esd(model, progress=False)
    g.add(plot_summary(res), f"{stem}_esd.png", f"{label}: heavy-tailed ESD metrics",
          "Power-law alpha (with bootstrap interval) of every weight matrix's eigenvalue "
          "spectrum, and one layer's ESD on log-log axes with the fitted tail; no data needed.",
          esd_numbers(res), result=res)
    return res


def symbolic_activation_figure(g: Gallery, model: Any, data: Any, file: str, title: str) -> None:
    """Fit every learnable activation curve of ``model`` (e.g. each Fourier-KArAt head) with the
    primitive library, like a KAN edge, and draw curve vs best fit."""
    import numpy as np

    from analyses.symbolic.fit import evaluate_fit, fit_edges
    from analyses.symbolic.select import choose
    from inspect_kit.kan.activations import sample_activations
    from plotting import style

    with g.step("KArAt · symbolic fit of the attention function"):
        samples = sample_activations(model, data, samples=64 if g.quick else 256)
        x, y = samples.x.numpy(), samples.y.numpy()
        table = fit_edges(x, y, progress=False)
        rows = choose(table)
    lib = {p.name: p for p in table.library}
    n = len(rows)
    ncols = min(4, n)
    nrows = (n + ncols - 1) // ncols
    with style.context():
        fig, axes = style.figure(nrows, ncols, width=3.0 * ncols, height=2.5 * nrows,
                                 squeeze=False)
        for e, (ax, row) in enumerate(zip(axes.flat, rows)):
            ax.plot(x[e], y[e], color="black", lw=2, label="learned")
            if row.get("function") not in (None, "0"):
                prim = lib[row["function"]]
                p = row["params"]
                fit = evaluate_fit(prim, [p["a"], p["b"], p["c"], p["d"]], x[e],
                                   table.poly[e] if prim.symmetry == "poly" else None)
                ax.plot(x[e], fit, color="#d62728", ls="--", label=row["function"])
            r2 = row.get("r2_val")
            l, j, i = samples.index[e]
            ax.set_title(f"layer {l} head {j}: {row.get('function')}"
                         + (f" (R² {r2:.4f})" if r2 is not None else ""), fontsize=8)
            ax.set_xlabel("attention score s")
            ax.legend(fontsize=7)
        for ax in axes.flat[n:]:
            ax.set_axis_off()
    best = [r.get("r2_val") for r in rows if r.get("r2_val") is not None]
    g.add(fig, file, title,
          "Each head's learned univariate attention function phi(s) over the scores it sees, and "
          "the primitive c f(a s + b) + d the symbolic fitter picks for it (held-out R²).",
          {"heads": n, "functions chosen": ", ".join(sorted({str(r.get('function')) for r in rows})),
           "median held-out R²": float(np.median(best)) if best else None})


def esd_numbers(res: Any) -> dict[str, Any]:
    import math

    alphas = [r.get("alpha") for r in res.layers if r.get("alpha") is not None
              and not (isinstance(r.get("alpha"), float) and math.isnan(r["alpha"]))]
    out: dict[str, Any] = {"matrices": len(res.layers)}
    if alphas:
        out["mean alpha"] = sum(alphas) / len(alphas)
    return out
