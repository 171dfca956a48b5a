"""Figures of a :class:`~analyses.hessian.result.HessianResult` (never recomputed from a model).

* :func:`plot_density`: the SLQ spectral density, linear / log / symlog axes, optionally the
  exact spectrum (a histogram of given eigenvalues) as an overlay;
* :func:`plot_log_density`: the density of log10 |lambda| for both signs (the bulk near zero);
* :func:`plot_eigenvalues`: the computed eigenvalues with residual error bars;
* :func:`plot_blocks`: per-block traces and extreme eigenvalues beside the full spectrum;
* :func:`plot_hessian`: a summary panel of whatever the result holds (used by the CLI).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import style


def _symlog_ticks(axis: Any, thr: float, top: float) -> None:
    """Ticks 0 and +-10^k outside the linear zone only (no labels crowding around zero)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ks = range(int(np.ceil(np.log10(thr))), int(np.floor(np.log10(max(top, thr)))) + 1)
    step = max(1, len(ks) // 4)
    decades = [10.0 ** k for k in ks][::-1][::step]
    axis.set_major_locator(FixedLocator(sorted([0.0] + decades + [-v for v in decades])))
    axis.set_minor_locator(NullLocator())


def _density_axes(ax: Any, res: Any, scale: str, exact: np.ndarray | None) -> None:
    d = res.density
    grid, values = np.asarray(d["grid"]), np.asarray(d["values"])
    if exact is not None:
        exact = np.asarray(exact, dtype=float)
        bins = np.linspace(grid[0], grid[-1], 80)
        ax.hist(exact, bins=bins, density=True, color=style.PALETTE[1], alpha=0.35,
                label=f"exact spectrum ({len(exact)} eigenvalues)")
    label = f"SLQ ({np.asarray(d['nodes']).shape[0]} probes, $\\sigma$={d['width']:.2g})"
    floor = max(values.max() * 1e-8, 1e-12)
    ax.plot(grid, np.maximum(values, floor) if scale != "linear" else values,
            color=style.PALETTE[0], lw=1.2, label=label)
    if scale == "log":
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(values.max() * 1e-7, 1e-10))
    elif scale == "symlog":
        thr = max(float(d["threshold"]), 1e-12)
        ax.set_xscale("symlog", linthresh=thr)
        _symlog_ticks(ax.xaxis, thr, float(np.abs(grid).max()))
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(values.max() * 1e-7, 1e-10))
    elif scale != "linear":
        from inspect_kit.errors import OptionError

        raise OptionError(f"scale must be 'linear', 'log' or 'symlog', got {scale!r}")
    ax.axvline(0, color="0.5", lw=0.6)
    ax.set_xlabel("eigenvalue $\\lambda$" + (" (symlog)" if scale == "symlog" else ""))
    ax.set_ylabel("density" + (" (log scale)" if scale != "linear" else ""))
    ax.set_title(f"Hessian spectral density, negative mass {100 * d['negative_mass']:.1f}% "
                 f"($\\lambda<-{d['threshold']:.1g}$)")
    ax.legend(loc="upper right")


def plot_density(res: Any, *, scale: str = "linear", exact: np.ndarray | None = None) -> Any:
    """The broadened SLQ density; ``scale`` is "linear", "log" (y) or "symlog" (x, y log)."""
    if res.density is None:
        from inspect_kit.errors import OptionError

        raise OptionError("this result has no density; run hessian(..., density=True)")
    with style.context():
        fig, ax = style.figure(width=6.0, height=3.6)
        _density_axes(ax, res, scale, exact)
    return fig


def plot_log_density(res: Any) -> Any:
    """Densities of log10|lambda| for lambda > threshold and lambda < -threshold."""
    d = res.density
    with style.context():
        fig, ax = style.figure(width=6.0, height=3.4)
        g = np.asarray(d["log_grid"])
        ax.plot(g, d["log_values_positive"], color=style.PALETTE[0], label="$\\lambda > 0$")
        ax.plot(g, d["log_values_negative"], color=style.PALETTE[1], label="$\\lambda < 0$")
        ax.set_xlabel("$\\log_{10}|\\lambda|$")
        ax.set_ylabel("density of $\\log_{10}|\\lambda|$")
        ax.set_title(f"|eigenvalue| density (|$\\lambda$| > {d['threshold']:.1g})")
        ax.legend()
    return fig


def _eig_axes(ax: Any, res: Any) -> None:
    ev = np.asarray(res.eigenvalues)
    err = np.asarray(res.residuals)
    conv = np.asarray(res.converged, dtype=bool)
    ranks = np.arange(1, len(ev) + 1)
    ax.errorbar(ranks[conv], ev[conv], yerr=err[conv], fmt="o", color=style.PALETTE[0],
                capsize=3, label="converged (bar = residual)")
    if (~conv).any():
        ax.errorbar(ranks[~conv], ev[~conv], yerr=err[~conv], fmt="x", color=style.PALETTE[1],
                    capsize=3, label="not converged")
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(ranks)
    ax.set_xlabel("index (descending)")
    ax.set_ylabel("eigenvalue $\\lambda$")
    ax.set_title(f"Lanczos eigenvalues ({res.which}), {res.hvp_count} HVPs total")
    ref = (res.reference or {}).get("eigenvalues")
    if ref:
        ax.plot(np.arange(1, len(ref) + 1), ref, "s", mfc="none", color=style.PALETTE[2],
                label="PyHessian (power iteration)")
    ax.legend(loc="best")


def plot_eigenvalues(res: Any) -> Any:
    """Eigenvalues with residual-norm error bars (and PyHessian's if the result has them)."""
    with style.context():
        fig, ax = style.figure(width=5.0, height=3.4)
        _eig_axes(ax, res)
    return fig


def _block_axes(axes: Any, res: Any) -> None:
    blocks = res.blocks
    names = [b["name"] for b in blocks]
    x = np.arange(len(blocks))
    tr = [b.get("trace", np.nan) for b in blocks]
    se = [b.get("trace_stderr", 0.0) or 0.0 for b in blocks]
    ax0, ax1 = axes
    ax0.bar(x, tr, yerr=se, color=style.PALETTE[0], capsize=3, label="block trace")
    if res.trace is not None:
        ax0.set_title(f"traces: sum of blocks {np.nansum(tr):.4g} vs full {res.trace:.4g}")
    ax0.set_xticks(x, names, rotation=30, ha="right")
    ax0.set_ylabel("trace")
    ax0.set_xlabel("parameter group")
    hi = [np.max(b["eigenvalues"]) for b in blocks]
    lo = [np.min(b["eigenvalues"]) for b in blocks]
    w = 0.38
    ax1.bar(x - w / 2, hi, w, color=style.PALETTE[0], label="block $\\lambda_{max}$")
    ax1.bar(x + w / 2, lo, w, color=style.PALETTE[1], label="block $\\lambda_{min}$")
    for xi, v in zip(x, lo):
        ax1.annotate(f"{v:.2g}", (xi + w / 2, 0), textcoords="offset points", xytext=(0, 3),
                     ha="center", fontsize=7, color=style.PALETTE[1])
    if len(res.eigenvalues):
        ax1.axhline(res.lambda_max, color=style.PALETTE[0], ls="--", lw=1,
                    label=f"full $\\lambda_{{max}}$ {res.lambda_max:.3g}")
        if res.which in ("both", "smallest"):
            ax1.axhline(res.lambda_min, color=style.PALETTE[1], ls="--", lw=1,
                        label=f"full $\\lambda_{{min}}$ {res.lambda_min:.3g}")
    ax1.set_xticks(x, names, rotation=30, ha="right")
    ax1.set_ylabel("eigenvalue")
    ax1.set_xlabel("parameter group")
    ax1.set_title("extreme eigenvalues per block")
    ax1.legend(loc="best")


def plot_blocks(res: Any) -> Any:
    """Per-block trace bars (with standard errors) and extreme eigenvalues vs the full ones."""
    if not res.blocks:
        from inspect_kit.errors import OptionError

        raise OptionError("this result has no blocks; run hessian(..., blocks='layer')")
    with style.context():
        fig, axes = style.figure(1, 2, width=9.0, height=3.6)
        _block_axes(axes, res)
    return fig


def plot_hessian(res: Any) -> Any:
    """Summary: eigenvalues, then the density and blocks when the result has them."""
    panels = ["eig"] if len(res.eigenvalues) else []
    panels += ["density"] if res.density is not None else []
    panels += ["blocks", "blocks2"] if res.blocks else []
    if not panels:
        panels = ["text"]
    with style.context():
        fig, axes = style.figure(1, len(panels), width=4.4 * len(panels), height=3.6)
        axes = np.atleast_1d(axes)
        i = 0
        for p in panels:
            if p == "eig":
                _eig_axes(axes[i], res)
            elif p == "density":
                _density_axes(axes[i], res, "log", None)
                axes[i].set_title(f"density, {100 * res.density['negative_mass']:.1f}% "
                                  "negative mass")
            elif p == "blocks":
                _block_axes(axes[i:i + 2], res)
            elif p == "text":
                axes[i].axis("off")
                axes[i].text(0.5, 0.5, f"trace = {res.trace:.5g} +- {res.trace_stderr:.2g}",
                             ha="center", va="center")
            i += 1
    return fig
