"""Figures of a :class:`~analyses.symbolic.result.SymbolicResult`.

:func:`edge_fits`: one panel per fitted edge, the sampled spline curve (black) and the chosen
formula ``c f(a x + b) + d`` (red dashes), the held-out R^2 in the title. :func:`pareto`: each
edge's Pareto front of complexity vs held-out error ``1 - R^2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import style


def _curve(result: Any, r: int, samples: Any) -> tuple[np.ndarray, np.ndarray]:
    if samples is not None:
        e = result.edges[r]
        x, y = samples.curve(e["layer"], e["out"], e["in"])
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    c = result.details["curves"][r]
    return np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)


def _fitted(result: Any, e: dict[str, Any], x: np.ndarray) -> np.ndarray:
    from analyses.symbolic.fit import evaluate_fit

    prims = result.primitives()
    return evaluate_fit(prims[e["function"]], [e["params"][k] for k in "abcd"], x, e.get("poly"))


def edge_fits(result: Any, samples: Any = None, *, max_edges: int = 36,
              include_zeroed: bool = False) -> Any:
    """Grid of edge fits (spline vs chosen formula). ``samples`` (EdgeSamples) overrides the
    curves stored in the result."""
    rows = [r for r, e in enumerate(result.edges)
            if not e.get("masked") and (include_zeroed or e["function"] != "0")][:max_edges]
    with style.context():
        n = max(1, len(rows))
        ncols = min(4, n)
        nrows = math.ceil(n / ncols)
        fig, axes = style.figure(nrows, ncols, width=3.0 * ncols, height=2.5 * nrows, squeeze=False)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        if not rows:
            axes[0, 0].text(0.5, 0.5, "no fitted edges", ha="center", va="center")
        for ax, r in zip(axes.flat, rows):
            e = result.edges[r]
            x, y = _curve(result, r, samples)
            ax.plot(x, y, color="black", lw=2.2, alpha=0.6, label="spline")
            if e["function"] != "0":
                with np.errstate(all="ignore"):
                    ax.plot(x, _fitted(result, e, x), color=style.PALETTE[1], lw=1.2, ls="--",
                            label=e["function"])
                r2 = e.get("r2_val")
                ax.set_title(f"({e['layer']},{e['out']},{e['in']}) {e['function']}  "
                             f"R²={r2:.8f}" if r2 is not None else e["function"])
            else:
                ax.set_title(f"({e['layer']},{e['out']},{e['in']}) zeroed")
            ax.set_xlabel(f"input of edge (layer {e['layer']}, node {e['in']})")
            ax.set_ylabel("edge output")
            ax.legend(loc="best", frameon=False)
        routes = [r.get("chosen") for r in result.details.get("routes", [])]
        note = (f" (formula from the {' and '.join(sorted(set(routes)))} route, not these edges)"
                if routes and "edges" not in routes else "")
        fig.suptitle(f"edge fits; formula R² vs network {result.formula_r2_model:.8f}{note}")
    return fig


def pareto(result: Any, *, max_edges: int = 12) -> Any:
    """Complexity vs held-out error ``1 - R^2`` (log scale) of every fitted edge's Pareto front;
    the chosen primitive is circled."""
    rows = [e for e in result.edges if e["function"] != "0" and e.get("pareto")][:max_edges]
    with style.context():
        fig, ax = style.figure(1, 1, width=5.5, height=3.8)
        for k, e in enumerate(rows):
            pf = e["pareto"]
            cx = [p["complexity"] for p in pf]
            err = [max(1 - p["r2_val"], 1e-16) for p in pf]
            col = style.PALETTE[k % len(style.PALETTE)]
            ax.plot(cx, err, marker="o", ms=3, color=col,
                    label=f"({e['layer']},{e['out']},{e['in']})")
            for p, c_, er in zip(pf, cx, err):
                if p["function"] == e["function"]:
                    ax.plot([c_], [er], marker="o", ms=9, mfc="none", mec=col)
        ax.set_yscale("log")
        ax.set_xlabel("complexity")
        ax.set_ylabel("held-out error 1 - R²")
        ax.set_title("Pareto fronts (circle = chosen)")
        if rows:
            ax.legend(title="edge (l, out, in)", fontsize=7, frameon=False)
    return fig
