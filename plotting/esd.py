"""Figures of an :class:`analyses.esd.result.ESDResult` (drawn on demand, never during analysis).

* :func:`plot_esd`: one layer's ESD on log-log axes (log-binned density), the fitted power-law
  tail from ``xmin``, the ``xmin`` and detX lines and the Marchenko-Pastur bulk of the MP fit.
* :func:`plot_alphas`: alpha per layer as bars with the bootstrap confidence interval.
* :func:`plot_alpha_snapshots`: alpha per layer (and the mean) over training snapshots.
* :func:`plot_summary`: alpha bars next to the ESD of one layer (the CLI's ``--plot``).
* :func:`plot_quality`: mean alpha / alpha-hat against test accuracy across checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import style


def _layer(result: Any, name: str | None) -> dict[str, Any]:
    if name is not None:
        return result.row(name)
    ok = [r for r in result.analysed() if r["name"] in result.eigenvalues
          and math.isfinite(r.get("alpha", math.nan))]
    if not ok:
        ok = [r for r in result.analysed() if r["name"] in result.eigenvalues]
    if not ok:
        from inspect_kit.errors import InspectKitError

        raise InspectKitError("the result has no analysed layer with stored eigenvalues")
    return max(ok, key=lambda r: r["n_evals"])


def _mp_density(x: np.ndarray, Q: float, sigma: float) -> np.ndarray:
    b = (sigma * (1 + math.sqrt(1 / Q))) ** 2
    a = (sigma * (1 - math.sqrt(1 / Q))) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        val = Q / (2 * np.pi * sigma ** 2 * x) * np.sqrt((b - x) * (x - a))
    return np.nan_to_num(val)


def plot_esd(result: Any, name: str | None = None, ax: Any = None) -> Any:
    """Log-log ESD of layer ``name`` (default: the largest analysed layer) with its fits."""
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=4.6, height=3.5)
        else:
            fig = ax.figure
        row = _layer(result, name)
        ev = result.evals(row["name"])
        pos = ev[ev > 1e-12]
        bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()) + 1e-9, 60)
        dens, edges = np.histogram(pos, bins=bins, density=True)
        centers = np.sqrt(edges[1:] * edges[:-1])
        keep = dens > 0
        ax.step(centers[keep], dens[keep], where="mid", color=style.PALETTE[0], lw=1.2,
                label="ESD (log-binned density)")
        alpha, xmin = row.get("alpha_raw", math.nan), row.get("xmin", math.nan)
        if math.isfinite(alpha) and math.isfinite(xmin) and alpha > 1:
            frac = np.mean(ev >= xmin)
            xs = np.logspace(np.log10(xmin), np.log10(pos.max()), 50)
            pl = frac * (alpha - 1) / xmin * (xs / xmin) ** (-alpha)
            lab = rf"power law $\alpha$={alpha:.2f}" + (" (flagged)" if row.get("flag") else "")
            ax.plot(xs, pl, "--", color=style.PALETTE[1], lw=1.5, label=lab)
            ax.axvline(xmin, color=style.PALETTE[1], lw=0.8,
                       label=rf"$\lambda_{{min}}$={xmin:.3g} ({row['num_tail']} pts)")
        sig = row.get("sigma_mp", math.nan)
        if sig is not None and math.isfinite(sig) and row["M"]:
            Q = row["N"] / row["M"]
            w2 = len(ev) / ev.sum()  # rescaling of lambda to mean 1
            xs = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 400)
            if Q > 1:
                ax.plot(xs, _mp_density(xs * w2, Q, sig) * w2, color=style.PALETTE[2], lw=1.2,
                        label=rf"MP bulk ($\sigma$={sig:.2f}, {row['num_spikes']} spikes)")
            ax.axvline(row["bulk_max"], color=style.PALETTE[2], lw=0.8, ls=":",
                       label=r"MP edge $\lambda_+$")
        dv = row.get("detx_val", math.nan)
        if dv is not None and math.isfinite(dv):
            ax.axvline(dv, color=style.PALETTE[4], lw=0.8, ls="-.",
                       label=f"detX tail start ({row['detx_num']} pts)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(dens[keep].min() / 10, 1e-8))
        ax.set_xlabel(r"eigenvalue $\lambda$ of $W^TW$")
        ax.set_ylabel("density")
        ax.set_title(f"ESD of {row['name']}  {tuple(row['shape'])}", fontsize=9)
        ax.legend(loc="lower left", fontsize=7)
        return fig


def plot_alphas(result: Any, ax: Any = None, max_rows: int = 60) -> Any:
    """Alpha per layer as bars with the fixed-xmin bootstrap CI; flagged rows marked x."""
    with style.context():
        rows = [r for r in result.layers if r["status"] != "skipped"][:max_rows]
        if ax is None:
            fig, ax = style.figure(width=max(4.0, 0.22 * len(rows) + 1.5), height=3.4)
        else:
            fig = ax.figure
        y = np.arange(len(rows))
        a = np.array([r["alpha"] if r["alpha"] is not None else math.nan for r in rows], float)
        ci = np.array([[c if c is not None else math.nan for c in r["alpha_ci"]] for r in rows],
                      float).reshape(-1, 2)
        err = np.vstack([a - ci[:, 0], ci[:, 1] - a])
        err = np.where(np.isfinite(err), np.clip(err, 0, None), 0)
        colors = [style.PALETTE[3] if r.get("warning") else style.PALETTE[0] for r in rows]
        ax.bar(y, np.nan_to_num(a), yerr=err, color=colors, capsize=2, width=0.7,
               error_kw={"lw": 0.8})
        bad = [i for i, r in enumerate(rows) if r.get("flag")]
        if bad:
            ax.plot(bad, [0.2] * len(bad), "kx", label="flagged: PL not meaningful")
        ax.axhspan(2, 6, color=style.PALETTE[2], alpha=0.08, label=r"2 $\leq\alpha\leq$ 6")
        ax.set_xticks(y)
        ax.set_xticklabels([r["name"] for r in rows], rotation=90, fontsize=6)
        ax.set_ylabel(r"$\alpha$ (90% bootstrap CI)")
        ax.set_title(f"power-law alpha per layer ({result.method} method)")
        ax.legend(fontsize=7, loc="upper right")
        return fig


def plot_summary(result: Any, name: str | None = None) -> Any:
    """Alpha bars (left) and one layer's ESD (right): the CLI figure."""
    with style.context():
        n = len([r for r in result.layers if r["status"] != "skipped"])
        fig, axes = style.figure(1, 2, width=max(8.5, 0.22 * min(n, 60) + 5.5), height=3.8)
        plot_alphas(result, ax=axes[0])
        if result.eigenvalues:
            plot_esd(result, name, ax=axes[1])
        else:
            axes[1].set_axis_off()
        return fig


def plot_alpha_snapshots(results: Sequence[Any], steps: Sequence[float] | None = None,
                         ax: Any = None, max_layers: int = 12) -> Any:
    """Alpha of each layer (thin lines) and the mean (thick) over training snapshots."""
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=4.8, height=3.4)
        else:
            fig = ax.figure
        xs = list(steps) if steps is not None else list(range(len(results)))
        names = [r["name"] for r in results[-1].analysed()][:max_layers]
        for i, nm in enumerate(names):
            ys = []
            for res in results:
                try:
                    ys.append(res.row(nm)["alpha"])
                except Exception:  # noqa: BLE001 - a layer missing in a snapshot is a gap
                    ys.append(math.nan)
            ax.plot(xs, [math.nan if v is None else v for v in ys], lw=0.9, marker=".",
                    color=style.PALETTE[i % len(style.PALETTE)], label=nm)
        ax.plot(xs, [r.summary.get("mean_alpha", math.nan) for r in results], "k-", lw=2.2,
                label="mean")
        ax.set_xlabel("training snapshot" if steps is None else "step")
        ax.set_ylabel(r"$\alpha$")
        ax.set_title("alpha over training")
        ax.legend(fontsize=6, ncol=2)
        return fig


def plot_quality(result: Any) -> Any:
    """Mean alpha and mean alpha-hat against test accuracy (a QualityResult)."""
    with style.context():
        fig, axes = style.figure(1, 2, width=7.6, height=3.2)
        acc = np.asarray(result.accuracy, float)
        for ax, key, lab in ((axes[0], "mean_alpha", r"mean $\alpha$"),
                             (axes[1], "mean_alpha_hat", r"mean $\hat\alpha$")):
            v = np.asarray(getattr(result, key), float)
            ax.scatter(v, acc, color=style.PALETTE[0])
            for i, lbl in enumerate(result.labels):
                ax.annotate(str(lbl), (v[i], acc[i]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
            r = result.spearman.get(key, math.nan)
            ax.set_title(f"{lab} vs accuracy (Spearman {r:.2f})")
            ax.set_xlabel(lab)
            ax.set_ylabel("test accuracy")
        return fig
