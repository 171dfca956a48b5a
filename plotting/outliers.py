"""Figure of an :class:`~analyses.hessian.result.OutliersResult`: the GGN's outliers by kind.

Left: the top GGN eigenvalues on a log axis, coloured by kind (class / cross-class / bulk, the
share of each eigenvector in the span of the class means and of all class/cross-class means),
the class outliers labelled with the class they align with, and the Hessian's top eigenvalues
beside them. Right: the spectral density of ``H - G`` with its negative mass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import style

COLORS = {"class": style.PALETTE[1], "cross-class": style.PALETTE[3], "bulk": "0.6"}


def plot_outliers(res: Any) -> Any:
    """The outlier figure (see the module docstring)."""
    panels = 2 if res.residual is not None else 1
    with style.context():
        fig, axes = style.figure(1, panels, width=5.2 * panels, height=3.8)
        axes = np.atleast_1d(axes)
        ax = axes[0]
        ev = np.asarray(res.ggn_eigenvalues, dtype=float)
        ranks = np.arange(1, len(ev) + 1)
        for kind, color in COLORS.items():
            sel = np.asarray([k == kind for k in res.kinds])
            if sel.any():
                ax.scatter(ranks[sel], ev[sel], s=14, color=color,
                           label=f"GGN, {kind} ({int(sel.sum())})")
        he = np.asarray(res.hessian_eigenvalues, dtype=float)
        pos = he > 0
        ax.scatter(np.arange(1, len(he) + 1)[pos], he[pos], s=10, marker="x",
                   color=style.PALETTE[0], alpha=0.6, label="Hessian (positive)")
        for i, (kind, a) in enumerate(zip(res.kinds, res.attribution)):
            if kind == "class":
                ax.annotate(str(a["class"]), (i + 1, ev[i]), textcoords="offset points",
                            xytext=(4, 2), fontsize=7, color=COLORS["class"])
        ax.set_yscale("log")
        ax.set_xlabel("rank")
        ax.set_ylabel("eigenvalue")
        gap = "" if res.gap is None else f", gap {res.gap:.2f}x"
        ax.set_title(f"GGN outliers of a {res.n_classes}-class model{gap}")
        ax.legend(fontsize=7, loc="upper right")
        if res.residual is not None:
            r = res.residual
            ax2 = axes[1]
            grid, values = np.asarray(r["grid"]), np.asarray(r["values"])
            ax2.plot(grid, np.maximum(values, values.max() * 1e-8), color=style.PALETTE[4])
            ax2.set_yscale("log")
            ax2.axvline(0, color="0.5", lw=0.6)
            ax2.axvline(-r["threshold"], color=style.PALETTE[1], lw=0.6, ls="--")
            ax2.set_xlabel("eigenvalue of H - G")
            ax2.set_ylabel("density (log scale)")
            ax2.set_title(f"H - G: {100 * r['negative_mass']:.1f}% negative mass")
    return fig
