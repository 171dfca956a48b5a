""":func:`plot_summary`: one figure for one Result (the command line's ``--plot``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import style
from .draw import bare, gray, heatmap, panel_values, query_panel
from .maps import rollout_panel
from .stats import distance_unit, per_layer


def plot_summary(result: Any) -> Any:
    """Top: the input (image) or the last layer's token x token matrix (sequence), the rollout
    of the query token, and the last layer's maps per head (query row, or window map for Swin).
    Bottom: distance, entropy, negative mass and the last layer's spectrum."""
    res = result
    last = res.layers[-1]
    with style.context():
        fig, ax0 = style.figure(1, 1, width=2.2 * max(2 + last.heads, 4), height=5.4)
        ax0.remove()
        top_fig, bottom_fig = fig.subfigures(2, 1)
        top = np.atleast_1d(top_fig.subplots(1, 2 + last.heads))
        bottom = np.atleast_1d(bottom_fig.subplots(1, 4))
        if res.kind == "sequence" and last.matrix is not None:
            heatmap(top[0], last.matrix, res)
            top[0].set_title(f"{last.name}: head mean", fontsize=7)
        else:
            img = gray(res.image)
            if img is not None:
                top[0].imshow(img, cmap="gray")
            bare(top[0])
            top[0].set_title(f"input #{res.index}" + (f" (y={res.label})"
                                                      if res.label is not None else ""))
        rollout_panel(top[1], res)
        values = panel_values(last)
        im = None
        for h in range(last.heads):
            ax = top[2 + h]
            if values is None:
                ax.axis("off")
                continue
            im = query_panel(ax, res, last, h, float(np.nanmax(np.abs(values))),
                             bool(np.nanmin(values) < 0)) or im
            ax.set_title(f"{last.name}, head {h}", fontsize=7)
        if im is not None:
            top_fig.colorbar(im, ax=top[2:], shrink=0.8, label="attention")
        named = {res.model: res}
        for a, field, lab in ((bottom[0], "distance", f"distance ({distance_unit(res)})"),
                              (bottom[1], "entropy", "entropy (nats)"),
                              (bottom[2], "negative_mass", "negative mass (share of |A|)")):
            per_layer(a, named, field, lab, xlabel="layer (dots: heads)")
        ax = bottom[3]
        for h in range(last.heads):
            ax.plot(np.arange(1, last.spectrum.shape[-1] + 1), last.spectrum[1][h],
                    color=style.PALETTE[h % len(style.PALETTE)], label=f"head {h}")
        ax.set_yscale("log")
        ax.set_xlabel("index")
        ax.set_ylabel("singular value")
        ax.set_title(f"{last.name} spectrum (input mean)", fontsize=8)
        ax.legend(fontsize=6)
        fig.suptitle(f"Attention of {res.model}", fontsize=9)
    return fig
