"""Small helpers shared by the gallery sections: key numbers and one-axis figures."""

from __future__ import annotations

from typing import Any

from .context import Gallery


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
    """ESD alphas per layer (added when the ESD plots exist)."""
    from analyses.esd import esd

    try:
        from plotting.esd import plot_esd_summary
    except ImportError:
        plot_esd_summary = None
    with g.step(f"{label} · ESD"):
        res = esd(model, progress=False)
    if plot_esd_summary is not None:
        g.add(plot_esd_summary(res), f"{stem}_esd.png", f"{label}: heavy-tailed ESD metrics",
              "Power-law alpha of every weight matrix's eigenvalue spectrum (no data needed).",
              esd_numbers(res))
    return res


def esd_numbers(res: Any) -> dict[str, Any]:
    import math

    alphas = [r.get("alpha") for r in res.layers if r.get("alpha") is not None
              and not (isinstance(r.get("alpha"), float) and math.isnan(r["alpha"]))]
    out: dict[str, Any] = {"matrices": len(res.layers)}
    if alphas:
        out["mean alpha"] = sum(alphas) / len(alphas)
    return out
