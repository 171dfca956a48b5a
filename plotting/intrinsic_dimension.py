"""Figures of an :class:`~analyses.intrinsic_dimension.result.IntrinsicDimensionResult`.

* :func:`plot_accuracy`: evaluation accuracy against the subspace dimension ``d`` (log axis),
  with the full model's accuracy, both 90% thresholds and the d_int90 each gives;
* :func:`plot_curves`: the training curves (accuracy per epoch) of every ``d`` and of the
  full model;
* :func:`plot_intrinsic_dimension`: both side by side (used by the command line).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import style

_LABEL = {"relative": "90% of full accuracy", "gap": "90% of the chance-to-full gap"}


def plot_accuracy(res: Any, ax: Any = None) -> Any:
    """Accuracy vs ``d`` with the thresholds and d_int90 of both baseline definitions."""
    with style.context():
        fig = None
        if ax is None:
            fig, ax = style.figure(width=5.0, height=3.6)
        ax.semilogx(res.dims, res.accuracy, "o-", ms=3, color=style.PALETTE[0], base=2,
                    label=f"subspace training ({res.projection})")
        ax.axhline(res.full_accuracy, color="black", lw=1.0,
                   label=f"full model ({res.n_params} parameters): {res.full_accuracy:.3f}")
        ax.axhline(res.chance_accuracy, color="0.6", lw=0.8, ls=":",
                   label=f"chance: {res.chance_accuracy:.3f}")
        for i, (name, tau) in enumerate(sorted(res.thresholds.items())):
            color = style.PALETTE[1 + i]
            d = res.d_int90.get(name)
            ax.axhline(tau, color=color, lw=0.9, ls="--")
            text = f"{_LABEL.get(name, name)}: d_int90 = {d if d is not None else 'not reached'}"
            if d is not None:
                ax.axvline(d, color=color, lw=0.9, ls="--", label=text)
            else:
                ax.plot([], [], color=color, ls="--", label=text)
        ax.set_xlabel("subspace dimension d")
        ax.set_ylabel(f"{res.eval_split} accuracy")
        ax.set_title(f"intrinsic dimension ({res.epochs} epochs per d)")
        ax.legend(fontsize=7, loc="lower right")
    return fig if fig is not None else ax.figure


def plot_curves(res: Any, ax: Any = None) -> Any:
    """Evaluation accuracy per epoch for every ``d`` (colour by log d) and the full model."""
    import matplotlib as mpl

    with style.context():
        fig = None
        if ax is None:
            fig, ax = style.figure(width=5.0, height=3.6)
        logs = np.log2(np.asarray(res.dims, dtype=float))
        norm = mpl.colors.Normalize(vmin=logs.min(), vmax=max(logs.max(), logs.min() + 1))
        cmap = mpl.colormaps["viridis"]
        for lg, curve in zip(logs, res.curves):
            ep = [r["epoch"] for r in curve]
            ax.plot(ep, [r.get("eval_acc", np.nan) for r in curve], color=cmap(norm(lg)), lw=1)
        if res.full_curve:
            ax.plot([r["epoch"] for r in res.full_curve],
                    [r.get("eval_acc", np.nan) for r in res.full_curve], color="black", lw=1.6,
                    label="full model")
            ax.legend(fontsize=7, loc="lower right")
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        bar = ax.figure.colorbar(sm, ax=ax, shrink=0.85)
        bar.set_label("log2 d")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{res.eval_split} accuracy")
        ax.set_title("training curves per d")
    return fig if fig is not None else ax.figure


def plot_intrinsic_dimension(res: Any) -> Any:
    """Accuracy vs d beside the training curves."""
    with style.context():
        fig, (a, b) = style.figure(1, 2, width=10.4, height=3.8)
        plot_accuracy(res, a)
        plot_curves(res, b)
    return fig
