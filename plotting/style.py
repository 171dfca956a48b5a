"""One look for every figure: fonts, sizes, colours.

Wrap a plotting function's body in ``with context():`` and make figures with :func:`figure`.

Figures are made with the object-oriented matplotlib API on the Agg backend (no screen needed);
plotting functions return the Figure and never call ``plt.show``.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402

RC: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 120,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.constrained_layout.use": True,
    "image.cmap": "viridis",
}

#: colours for compared things (model A/B, softmax/KArAt, ours/reference, ...)
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def figure(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
           height: float | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """A new ``(fig, axes)`` in the kit's style; default size 3.6 x 3.0 inches per panel."""
    width = width if width is not None else 3.6 * ncols
    height = height if height is not None else 3.0 * nrows
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)
    return fig, axes


def context() -> Any:
    """``with context():`` applies the kit's rcParams for the body (wrap whole plot functions)."""
    return plt.rc_context(RC)


def close(fig: Any) -> None:
    """Release a figure's memory (call after saving)."""
    plt.close(fig)
