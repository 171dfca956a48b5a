"""Figures of :class:`analyses.lmc.result.LMCResult`: interpolation curves and per-layer barriers."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import style

_PATH_COLOR = {"naive": 0, "aligned": 1, "repaired": 2}
_SPLIT_STYLE = {"train": "-", "test": "--", "data": "-"}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.2f} pp" if pct else f"{v:.3g}"


def plot_curves(result: Any, *, ax_loss: Any = None, ax_err: Any = None) -> Any:
    """Loss (left) and error in % (right) along t for every path and split; barriers in legend."""
    with style.context():
        has_err = result.error is not None
        if ax_loss is None:
            fig, axes = style.figure(1, 2 if has_err else 1, width=9.0 if has_err else 4.8,
                                     height=4.4)
            axes = np.atleast_1d(axes)
            ax_loss, ax_err = axes[0], (axes[1] if has_err else None)
        else:
            fig = ax_loss.figure
        for path, c in result.curves.items():
            color = style.PALETTE[_PATH_COLOR.get(path, 3)]
            t = np.asarray(c["t"], float)
            for s, lo in c["loss"].items():
                ls = _SPLIT_STYLE.get(s, ":")
                b = c["barrier_mean"]["loss"][s]
                ax_loss.plot(t, np.asarray(lo, float), ls, color=color, marker=".", ms=3,
                             label=f"{path}, {s} (B={_fmt(b)})")
                if ax_err is not None and c["error"] is not None:
                    be = c["barrier_mean"]["error"][s]
                    ax_err.plot(t, 100 * np.asarray(c["error"][s], float), ls, color=color,
                                marker=".", ms=3, label=f"{path}, {s} (B={_fmt(be, True)})")
        ax_loss.set_xlabel("interpolation t  (0 = model A, 1 = model B)")
        ax_loss.set_ylabel("loss")
        ax_loss.set_title("loss along (1-t) A + t B")
        ax_loss.legend(title="B = barrier_mean", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                       ncol=2, fontsize=7)
        if ax_err is not None:
            ax_err.set_xlabel("interpolation t  (0 = model A, 1 = model B)")
            ax_err.set_ylabel("error (%)")
            ax_err.set_title("error along (1-t) A + t B")
            ax_err.legend(title="B = barrier_mean", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                          ncol=2, fontsize=7)
        if result.aligned:
            a = result.aligned
            fig.suptitle(f"aligned by {a['method']} matching: max|dlogit| "
                         f"{a['max_abs_delta_logit']:.1e}, {100 * a['fraction_moved']:.0f}% of "
                         f"parameters moved")
        return fig


def plot_layerwise(result: Any, *, ax: Any = None, kind: str = "barrier_mean") -> Any:
    """Bars of the loss barrier of each layer interpolated alone (others held at A)."""
    if result.layerwise is None:
        from inspect_kit.errors import OptionError

        raise OptionError("the result has no layer-wise barriers; rerun lmc(..., layerwise=True)")
    lw = result.layerwise
    names = lw["names"]
    splits = list(lw[kind]["loss"])
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=max(4.5, 0.55 * len(names) * len(splits) + 2),
                                   height=3.6)
        else:
            fig = ax.figure
        x = np.arange(len(names))
        w = 0.8 / len(splits)
        for i, s in enumerate(splits):
            vals = np.asarray([np.nan if v is None else v for v in lw[kind]["loss"][s]], float)
            ax.bar(x + (i - (len(splits) - 1) / 2) * w, vals, w, label=s,
                   color=style.PALETTE[i % len(style.PALETTE)])
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45 if len(names) > 4 else 0, ha="right"
                           if len(names) > 4 else "center")
        ax.set_ylabel(f"loss {kind.replace('_', ' ')}")
        ax.set_xlabel("layer interpolated alone (others held at A)")
        pair = "aligned B" if result.aligned else "unaligned B"
        ax.set_title(f"layer-wise LMC ({pair})")
        top = np.nanmax([v for s in splits for v in lw[kind]["loss"][s] if v is not None] + [0])
        if top > 0:
            ax.set_ylim(0, 1.25 * top)
        ax.legend(title="split", loc="upper center", ncol=len(splits))
        return fig


def plot_lmc(result: Any) -> Any:
    """The full figure: curves (loss, error) and, when present, per-layer barrier bars."""
    if result.layerwise is None:
        return plot_curves(result)
    with style.context():
        has_err = result.error is not None
        n = 3 if has_err else 2
        fig, axes = style.figure(1, n, width=4.3 * n, height=4.6)
        plot_curves(result, ax_loss=axes[0], ax_err=axes[1] if has_err else None)
        plot_layerwise(result, ax=axes[-1])
        return fig
