"""Figures of a :class:`analyses.landscape.result.LandscapeResult` (Li et al. 2018 styles).

* :func:`plot_line`: 1-D loss (left axis) and accuracy (right axis) along the direction.
* :func:`plot_contour`: 2-D filled contour plus contour lines, optional log-spaced levels, and the
  optimiser path overlay when the result holds one (axes labelled with explained variance for
  PCA directions).
* :func:`plot_surface`: 3-D surface (``add_subplot(projection="3d")``; Li et al.'s ``Axes3D(fig)``
  draws a blank figure on current Matplotlib).
* :func:`plot_landscape`: the default figure for the CLI (line for 1-D; contour + surface for 2-D).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import style


def _levels(z: np.ndarray, n: int, log: bool) -> np.ndarray:
    finite = z[np.isfinite(z)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1e-12
    if log:
        lo = max(lo, hi * 1e-8, 1e-12)
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def plot_line(result: Any, ax: Any = None) -> Any:
    """Loss (solid, left axis) and accuracy (dashed, right axis) along a 1-D landscape."""
    if result.dims != 1:
        raise ValueError("plot_line needs a 1-D landscape (dims=1)")
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=4.6, height=3.2)
        else:
            fig = ax.figure
        x = np.asarray(result.axes[0])
        loss = np.asarray(result.loss, dtype=float)
        ax.plot(x, loss, color=style.PALETTE[0], lw=1.6, label="loss")
        ax.plot([0.0], [result.center_loss], "o", color="k", ms=4, label="trained point")
        if result.directions_info.get("kind") == "interpolation":
            ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(result.axis_label(0))
        ax.set_ylabel(f"{result.meta.get('split', 'train')} loss", color=style.PALETTE[0])
        handles, labels = ax.get_legend_handles_labels()
        if result.accuracy is not None:
            ax2 = ax.twinx()
            ax2.plot(x, 100 * np.asarray(result.accuracy, dtype=float), color=style.PALETTE[1],
                     lw=1.4, ls="--", label="accuracy")
            ax2.set_ylabel("accuracy (%)", color=style.PALETTE[1])
            ax2.set_ylim(-2, 102)
            ax2.grid(False)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
                  frameon=False)
        ax.set_title("loss along a direction")
    return fig


def plot_contour(result: Any, ax: Any = None, *, log: bool = False, levels: int = 20,
                 path: bool = True) -> Any:
    """Filled contour and contour lines of a 2-D landscape, with the path overlay if present."""
    if result.dims != 2:
        raise ValueError("plot_contour needs a 2-D landscape (dims=2)")
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=4.4, height=3.6)
        else:
            fig = ax.figure
        a, b = (np.asarray(v) for v in result.axes)
        z = np.asarray(result.loss, dtype=float)
        A, B = np.meshgrid(a, b, indexing="ij")
        lv = _levels(z, levels, log)
        norm = None
        if log:
            from matplotlib.colors import LogNorm

            norm = LogNorm(vmin=lv[0], vmax=lv[-1])
        cf = ax.contourf(A, B, np.clip(z, lv[0], None), levels=lv, norm=norm, cmap="viridis",
                         extend="max")
        ax.contour(A, B, z, levels=lv[::2], colors="white", linewidths=0.5, alpha=0.6)
        cb = fig.colorbar(cf, ax=ax, ticks=lv[:: max(1, len(lv) // 6)])
        cb.ax.set_yticklabels([f"{v:.3g}" for v in lv[:: max(1, len(lv) // 6)]])
        cb.ax.minorticks_off()
        cb.set_label(f"{result.meta.get('split', 'train')} loss" + (" (log scale)" if log else ""))
        ax.plot([0], [0], marker="*", color="red", ms=9, ls="none", label="trained point")
        if path and result.path is not None:
            c = np.asarray(result.path["coords"], dtype=float)
            if c.ndim == 2 and c.shape[1] >= 2:
                ax.plot(c[:, 0], c[:, 1], "-o", color="white", ms=2.5, lw=1.0,
                        mec="k", mew=0.3, label="optimiser path")
                ax.plot(c[0, 0], c[0, 1], "s", color="orange", ms=5, label="start")
                rel = np.asarray(result.path["relative_residual"], dtype=float)
                ax.set_title(f"loss landscape (path off-plane: max {100 * np.nanmax(rel):.0f}% "
                             "of distance)")
            else:
                ax.set_title("loss landscape")
        else:
            ax.set_title("loss landscape")
        ax.set_xlabel(result.axis_label(0))
        ax.set_ylabel(result.axis_label(1))
        ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
        ax.grid(False)
    return fig


def plot_surface(result: Any, fig: Any = None, *, log: bool = False) -> Any:
    """3-D surface of a 2-D landscape (``add_subplot(projection="3d")``)."""
    if result.dims != 2:
        raise ValueError("plot_surface needs a 2-D landscape (dims=2)")
    with style.context():
        if fig is None:
            fig, ax0 = style.figure(width=4.6, height=3.8)
            fig.delaxes(ax0)
        ax = fig.add_subplot(projection="3d")
        a, b = (np.asarray(v) for v in result.axes)
        z = np.asarray(result.loss, dtype=float)
        if log:
            z = np.log10(np.clip(z, 1e-12, None))
        A, B = np.meshgrid(a, b, indexing="ij")
        ax.plot_surface(A, B, z, cmap="coolwarm", linewidth=0, antialiased=True, alpha=0.95)
        ax.set_xlabel(result.axis_label(0), fontsize=7)
        ax.set_ylabel(result.axis_label(1), fontsize=7)
        ax.set_zlabel("log10 loss" if log else "loss", fontsize=7)
        ax.set_title("loss surface")
    return fig


def plot_landscape(result: Any, *, log: bool = False) -> Any:
    """Default figure: the 1-D curve, or contour (+ path) beside the 3-D surface."""
    if result.dims == 1:
        return plot_line(result)
    with style.context():
        fig, axes = style.figure(1, 2, width=9.2, height=3.8)
        plot_contour(result, axes[0], log=log)
        fig.delaxes(axes[1])
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        a, b = (np.asarray(v) for v in result.axes)
        z = np.asarray(result.loss, dtype=float)
        z = np.log10(np.clip(z, 1e-12, None)) if log else z
        A, B = np.meshgrid(a, b, indexing="ij")
        ax3.plot_surface(A, B, z, cmap="coolwarm", linewidth=0, antialiased=True)
        short = "PC" if result.directions_info.get("kind") == "pca" else "d"
        ax3.set_xlabel(f"{short}1", fontsize=7)
        ax3.set_ylabel(f"{short}2", fontsize=7)
        ax3.set_zlabel("log10 loss" if log else "loss", fontsize=7)
        ax3.set_title("loss surface")
    return fig
