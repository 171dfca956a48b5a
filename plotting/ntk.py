"""Figures of an :class:`~analyses.ntk.result.NTKResult` (never recomputed from a model).

* :func:`plot_kernel`: the kernel as a heatmap (summed over outputs for "full" and
  "per_output"), samples sorted by class when the labels are known, so class blocks show;
* :func:`plot_spectrum`: the top eigenvalues on a log axis, beside those of the compared
  model's kernel when there is one;
* :func:`plot_ggn`: the Gauss-Newton check, GGN eigenvalues against the kernel side;
* :func:`plot_kernel_trajectory`: results along training (each with ``compare`` = the start):
  the kernel's relative change and alignment, the target alignment and the top eigenvalue;
* :func:`plot_ntk`: a summary panel of whatever the result holds (used by the command line).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspect_kit.errors import OptionError

from . import style


def _trace_kernel(res: Any) -> np.ndarray:
    K = np.asarray(res.kernel)
    if res.form == "full":
        return np.einsum("ijaa->ij", K)
    if res.form == "per_output":
        return K.sum(0)
    return K


def plot_kernel(res: Any, ax: Any = None) -> Any:
    """Heatmap of the (output-summed) kernel; samples sorted by label when known."""
    if res.kernel is None:
        raise OptionError("this result holds no kernel (matrix-free, or left out of a large "
                          "JSON file); run ntk() with the kernel formed")
    K = _trace_kernel(res)
    order = np.argsort(res.labels, kind="stable") if res.labels else np.arange(len(K))
    with style.context():
        fig = None
        if ax is None:
            fig, ax = style.figure(width=4.4, height=3.8)
        lo, hi = np.percentile(K, [1, 99])  # a few large diagonal entries would wash it out
        im = ax.imshow(K[np.ix_(order, order)], cmap="viridis", interpolation="nearest",
                       vmin=lo, vmax=hi)
        bar = ax.figure.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label("$\\Theta(x_i, x_j)$, 1st-99th percentile")
        what = "sorted by class" if res.labels else "in data order"
        ax.set_xlabel(f"sample j ({what})")
        ax.set_ylabel("sample i")
        form = {"full": "trace over outputs", "trace": "trace over outputs",
                "per_output": "sum of per-output kernels"}[res.form]
        ax.set_title(f"empirical NTK, {res.n_samples} samples ({form})")
        ax.grid(False)
    return fig if fig is not None else ax.figure


def plot_spectrum(res: Any, ax: Any = None) -> Any:
    """Top eigenvalues (log scale) and, with ``compare``, the other kernel's."""
    with style.context():
        fig = None
        if ax is None:
            fig, ax = style.figure(width=4.4, height=3.4)
        vals = np.atleast_2d(res.eigenvalues)
        for a, ev in enumerate(vals):
            label = f"output {a}" if res.form == "per_output" else f"this model ({res.method})"
            ax.semilogy(np.arange(1, len(ev) + 1), np.clip(ev, 1e-300, None), "o-", ms=3,
                        color=style.PALETTE[a % len(style.PALETTE)], label=label)
        ch = res.change or {}
        if ch.get("compare_eigenvalues") is not None and res.form != "per_output":
            ev = np.asarray(ch["compare_eigenvalues"])
            ax.semilogy(np.arange(1, len(ev) + 1), np.clip(ev, 1e-300, None), "s--", ms=3,
                        color="0.4", label="compared model")
        ax.set_xlabel("rank k")
        ax.set_ylabel("eigenvalue $\\lambda_k$")
        title = "NTK top eigenvalues"
        if ch:
            title += (f"\nrel. change {ch['relative_frobenius']:.3g}, alignment "
                      f"{ch['alignment']:.3f}, CKA {ch['cka']:.3f}")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=7)
    return fig if fig is not None else ax.figure


def plot_ggn(res: Any, ax: Any = None) -> Any:
    """GGN eigenvalues (Lanczos in parameter space) against the kernel side (eigh)."""
    if res.ggn is None:
        raise OptionError("this result has no GGN check; run ntk(..., ggn_check=True)")
    g = res.ggn
    with style.context():
        fig = None
        if ax is None:
            fig, ax = style.figure(width=3.8, height=3.4)
        x, y = np.asarray(g["ntk_side_eigenvalues"]), np.asarray(g["ggn_eigenvalues"])
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.loglog([lo, hi], [lo, hi], color="0.6", lw=0.8, label="y = x")
        ax.loglog(x, y, "o", color=style.PALETTE[0], ms=4, label="top eigenvalues")
        ax.set_xlabel("eig($\\Lambda^{1/2}\\,\\Theta\\,\\Lambda^{1/2}$)")
        ax.set_ylabel("eig(GGN)")
        ax.set_title(f"GGN check ({g['loss']}): max rel. diff "
                     f"{g['max_relative_difference']:.1e}")
        ax.legend(loc="upper left", fontsize=7)
    return fig if fig is not None else ax.figure


def plot_kernel_trajectory(results: list[Any], epochs: list[int]) -> Any:
    """Along training snapshots (each result computed with ``compare`` = the start): the
    kernel's relative change, its alignment and CKA with the initial kernel, and its alignment
    with the labels beside its top eigenvalue."""
    if len(results) != len(epochs) or not results:
        raise OptionError(f"need one result per epoch, got {len(results)} results and "
                          f"{len(epochs)} epochs")
    ch = [r.change or {} for r in results]
    with style.context():
        fig, (a1, a2, a3) = style.figure(1, 3, width=11.4, height=3.3)
        a1.plot(epochs, [c.get("relative_frobenius", np.nan) for c in ch], "o-", ms=3,
                color=style.PALETTE[0])
        a1.set_yscale("symlog", linthresh=0.1)
        a1.set_xlabel("epoch")
        a1.set_ylabel("$\\|\\Theta_t-\\Theta_0\\|_F\\,/\\,\\|\\Theta_0\\|_F$")
        a1.set_title("how far the kernel moves")
        a2.plot(epochs, [c.get("alignment", np.nan) for c in ch], "o-", ms=3,
                color=style.PALETTE[1], label="alignment")
        a2.plot(epochs, [c.get("cka", np.nan) for c in ch], "s-", ms=3,
                color=style.PALETTE[4], label="CKA (centred)")
        a2.set_xlabel("epoch")
        a2.set_ylabel("similarity to $\\Theta_0$")
        a2.set_title("how its shape changes")
        a2.legend(fontsize=7)
        a3.plot(epochs, [r.target_alignment for r in results], "o-", ms=3,
                color=style.PALETTE[2], label="kernel-target alignment")
        a3.set_xlabel("epoch")
        a3.set_ylabel("alignment with labels (centred)")
        twin = a3.twinx()
        twin.semilogy(epochs, [r.lambda_max for r in results], "s--", ms=3,
                      color=style.PALETTE[3], label="$\\lambda_{max}$")
        twin.set_ylabel("top eigenvalue")
        twin.grid(False)
        a3.set_title("what it learns")
        lines = a3.get_lines() + twin.get_lines()
        a3.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower right")
    return fig


def plot_ntk(res: Any) -> Any:
    """Kernel heatmap (when held), spectrum, and the GGN check (when asked)."""
    panels = ["kernel"] if res.kernel is not None else []
    if np.size(res.eigenvalues):
        panels.append("spectrum")
    if res.ggn is not None:
        panels.append("ggn")
    if not panels:
        raise OptionError("this result holds neither a kernel nor eigenvalues to draw")
    with style.context():
        fig, axes = style.figure(1, len(panels), width=4.4 * len(panels), height=3.8,
                                 squeeze=False)
        draw = {"kernel": plot_kernel, "spectrum": plot_spectrum, "ggn": plot_ggn}
        for ax, name in zip(axes[0], panels):
            draw[name](res, ax)
    return fig
