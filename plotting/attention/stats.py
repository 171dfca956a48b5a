"""Per-layer, per-head statistics: distance, entropy and negative mass (:func:`plot_distance`)
and singular-value spectra (:func:`plot_spectra`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import style
from .draw import named


def distance_unit(res: Any) -> str:
    """The unit of ``distance``: tokens, window cells or patch cells."""
    if res.kind == "sequence":
        return "tokens"
    if any(lay.windows is not None for lay in res.layers):
        return "window cells"
    return "patch cells"


def per_layer(ax: Any, nm: dict[str, Any], field: str, ylabel: str,
              xlabel: str = "layer (dots: heads, line: head mean)") -> None:
    """One dot per head and a head-mean line per result, over the layers."""
    n = len(nm)
    for c, (label, res) in enumerate(nm.items()):
        colour = style.PALETTE[c % len(style.PALETTE)]
        xs, means = [], []
        for i, lay in enumerate(res.layers):
            v = getattr(lay, field)
            if v is None:
                continue
            v = np.asarray(v, dtype=float)
            off = (c - (n - 1) / 2) * 0.12
            ax.scatter(np.full(len(v), i + off), v, s=14, color=colour, alpha=0.75,
                       label=label if not xs else None)
            xs.append(i + off)
            means.append(np.nanmean(v))
        if xs:
            ax.plot(xs, means, color=colour, lw=1, alpha=0.8)
    layers = max(len(r.layers) for r in nm.values())
    ax.set_xticks(range(layers))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_distance(results: Any) -> Any:
    """Attention distance (patch cells, window cells or tokens), entropy (nats) and negative
    mass per layer and head."""
    nm = named(results)
    units = {distance_unit(r) for r in nm.values()}
    unit = units.pop() if len(units) == 1 else "tokens / cells"
    with style.context():
        fig, axes = style.figure(1, 3, width=11.0, height=3.2)
        per_layer(axes[0], nm, "distance", f"mean attention distance ({unit})")
        per_layer(axes[1], nm, "entropy", "attention entropy (nats)")
        per_layer(axes[2], nm, "negative_mass", "negative mass (share of |A|)")
        axes[0].set_title("attention distance")
        axes[1].set_title("entropy")
        axes[2].set_title("negative attention mass")
        axes[0].legend(loc="best")
    return fig


def plot_spectra(results: Any, *, layer: int = -1) -> Any:
    """Singular values of one layer's attention matrices per head: mean over inputs (line) and
    min-max band; dashed: the scores before the activation (KArAt paper, Figs. 5 and 13)."""
    nm = named(results)
    with style.context():
        fig, axes = style.figure(1, len(nm), width=4.2 * len(nm), height=3.3, squeeze=False)
        for c, (label, res) in enumerate(nm.items()):
            ax = axes[0, c]
            lay = res.layers[layer]
            for h in range(lay.heads):
                colour = style.PALETTE[h % len(style.PALETTE)]
                lo, mean, hi = (np.asarray(lay.spectrum[j][h], dtype=float) for j in range(3))
                k = np.arange(1, len(mean) + 1)
                ax.plot(k, mean, color=colour, lw=1.3, label=f"head {h}")
                ax.fill_between(k, lo, hi, color=colour, alpha=0.15)
                if lay.score_spectrum is not None:
                    sm = np.asarray(lay.score_spectrum[1][h], dtype=float)
                    ax.plot(k, sm, color=colour, lw=1, ls="--",
                            label="scores (dashed)" if h == 0 else None)
            ax.set_yscale("log")
            ax.set_xlabel("singular value index")
            ax.set_ylabel("singular value")
            ax.set_title(f"{label}\n{lay.name}", fontsize=8)
            ax.legend(fontsize=6, ncol=2)
        fig.suptitle("Singular values of attention matrices (solid: weights, dashed: scores)")
    return fig
