"""Figures of :class:`analyses.fourier.result.FourierResult`.

:func:`plot_spectrum` (the embedding's norm per frequency, key frequencies marked),
:func:`plot_neurons` (the neuron-frequency map: each neuron's share of variance per frequency,
neurons sorted by their frequency), :func:`plot_logit_spectrum` (2-D energy of the logits over
(a, b)), :func:`plot_training` (full, restricted and excluded loss over training, and the key
frequencies' share of the embedding) and :func:`plot_summary` (all of them, the CLI's figure).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspect_kit.errors import OptionError

from . import style

KEY_COLOR, OTHER_COLOR = style.PALETTE[1], "#9a9a9a"


def neuron_order(result: Any) -> np.ndarray:
    """Neurons sorted by dominant frequency, then by decreasing purity (the map's row order)."""
    return np.lexsort((-np.asarray(result.neuron_purity), np.asarray(result.neuron_frequency)))


def plot_spectrum(result: Any, ax: Any = None, *, unembedding: bool = True) -> Any:
    """Bars of the embedding norm ``s_k`` for ``k = 1..K`` (key frequencies in colour, labelled);
    the unembedding's norms as a line when the result has them."""
    k = np.arange(1, result.n_frequencies + 1)
    s = np.asarray(result.embedding_spectrum)[1:]
    key = set(result.key_frequencies)
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=max(5.0, 0.16 * len(k) + 2.0), height=3.4)
        else:
            fig = ax.figure
        colors = [KEY_COLOR if f in key else OTHER_COLOR for f in k]
        ax.bar(k, s, color=colors, width=0.8, label="embedding W_E")
        for f in sorted(key):
            ax.annotate(str(f), (f, s[f - 1]), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, color=KEY_COLOR)
        if unembedding and result.unembedding_spectrum is not None:
            ax.plot(k, np.asarray(result.unembedding_spectrum)[1:], ".-", color=style.PALETTE[0],
                    lw=1, ms=3, label="unembedding W_U")
            ax.legend(loc="best")
        ax.set_xlabel("frequency k  (w = 2 pi k / p)")
        ax.set_ylabel("norm over Z_p")
        ax.set_title(f"embedding spectrum, p = {result.p}: key {list(result.key_frequencies)} "
                     f"hold {100 * result.key_share:.0f}% of the energy", fontsize=9)
        ax.set_xlim(0.3, len(k) + 0.7)
        return fig


def plot_neurons(result: Any, ax: Any = None) -> Any:
    """Heat map neurons x frequencies of each neuron's share of variance ``E_k / Var``, neurons
    sorted by their dominant frequency (:func:`neuron_order`); key frequencies ticked."""
    if result.neuron_fractions is None:
        raise OptionError("the result has no neuron statistics; rerun fourier() with "
                          "neurons='module name'")
    order = neuron_order(result)
    frac = np.asarray(result.neuron_fractions)[order, 1:]
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=max(4.5, 0.14 * frac.shape[1] + 2.5), height=4.4)
        else:
            fig = ax.figure
        im = ax.imshow(frac, aspect="auto", interpolation="nearest", vmin=0.0, vmax=1.0,
                       extent=(0.5, frac.shape[1] + 0.5, frac.shape[0] - 0.5, -0.5),
                       cmap="magma")
        ax.set_xticks(list(result.key_frequencies))
        ax.tick_params(axis="x", labelsize=7, colors=KEY_COLOR)
        ax.grid(False)
        ax.set_xlabel("frequency k (key frequencies ticked)")
        ax.set_ylabel("neuron (sorted by frequency)")
        alive = np.asarray(result.neuron_frequency) > 0
        purity = np.asarray(result.neuron_purity)
        on_key = np.isin(result.neuron_frequency, result.key_frequencies) & alive
        median = float(np.median(purity[alive])) if alive.any() else float("nan")
        ax.set_title(f"neuron-frequency map: {int(on_key.sum())}/{len(purity)} neurons on a key "
                     f"frequency, median purity {median:.2f}", fontsize=9)
        fig.colorbar(im, ax=ax, label="share of the neuron's variance", shrink=0.85)
        return fig


def plot_logit_spectrum(result: Any, ax: Any = None, *, neurons: bool = False) -> Any:
    """The 2-D energy fractions over (a, b) of the logits (or, with ``neurons=True``, the mean
    over neurons) in the basis ``const, cos 1, sin 1, ...``, on a log colour scale."""
    from matplotlib.colors import LogNorm

    m = np.asarray(result.neuron_spectrum if neurons else result.logit_spectrum, float)
    if neurons and result.neuron_spectrum is None:
        raise OptionError("the result has no neuron statistics; rerun fourier() with neurons=")
    with style.context():
        if ax is None:
            fig, ax = style.figure(width=4.8, height=4.2)
        else:
            fig = ax.figure
        floor = max(float(m.max()) * 1e-5, 1e-12)
        im = ax.imshow(np.clip(m, floor, None), norm=LogNorm(vmin=floor, vmax=max(m.max(), floor)),
                       interpolation="nearest", cmap="viridis")
        ticks = [2 * k - 1 for k in result.key_frequencies]
        ax.set_xticks(ticks, [f"cos {k}" for k in result.key_frequencies], rotation=90, fontsize=6)
        ax.set_yticks(ticks, [f"cos {k}" for k in result.key_frequencies], fontsize=6)
        ax.grid(False)
        ax.set_xlabel("b component")
        ax.set_ylabel("a component")
        what = "neurons (mean)" if neurons else "logits (sum over outputs)"
        ax.set_title(f"2-D Fourier energy of the {what}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.85, label="share of the energy")
        return fig


def training_curves(result: Any) -> dict[str, tuple[np.ndarray, str]]:
    """The loss curves :func:`plot_training` draws: label -> (values, trajectory key)."""
    t = result.trajectory
    out: dict[str, tuple[np.ndarray, str]] = {}
    for key, label in (("train_loss", "train loss"), ("test_loss", "test loss"),
                       ("all_restricted_loss", "restricted loss (all pairs)"),
                       ("train_restricted_loss", "restricted loss (train)"),
                       ("train_excluded_loss", "excluded loss (train)")):
        if key in t and not (key == "train_restricted_loss" and "all_restricted_loss" in t):
            out[label] = (np.asarray(t[key], float), key)
    return out


def plot_training(result: Any, axes: Any = None) -> Any:
    """Left: train, test, restricted and excluded loss per snapshot (log scale). Right: the
    key frequencies' share of the embedding's energy and the sum of squared weights."""
    if result.trajectory is None:
        raise OptionError("the result has no trajectory; pass trajectory= (training snapshots) "
                          "to fourier()")
    t = result.trajectory
    epoch = np.asarray(t["epoch"], float)
    styles = {"train loss": ("-", 0), "test loss": ("-", 1), "restricted loss (all pairs)":
              ("--", 2), "restricted loss (train)": ("--", 2), "excluded loss (train)": (":", 3)}
    with style.context():
        if axes is None:
            fig, axes = style.figure(1, 2, width=10.0, height=3.8)
        else:
            fig = axes[0].figure
        ax, ax2 = axes
        for label, (values, _) in training_curves(result).items():
            ls, c = styles[label]
            ax.plot(epoch, np.clip(values, 1e-8, None), ls, color=style.PALETTE[c], lw=1.5,
                    label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy")
        ax.set_title(f"progress measures, key frequencies {list(result.key_frequencies)}",
                     fontsize=9)
        ax.legend(fontsize=7)
        ax2.plot(epoch, np.asarray(t["key_share"], float), "-", color=KEY_COLOR,
                 label="key frequencies' share of W_E energy")
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("share of the embedding's energy", color=KEY_COLOR)
        twin = ax2.twinx()
        twin.plot(epoch, np.asarray(t["weight_norm"], float), "-", color=style.PALETTE[0],
                  label="sum of squared weights")
        twin.set_ylabel("sum of squared weights", color=style.PALETTE[0])
        twin.grid(False)
        ax2.set_title("Fourier sparsity and weight norm", fontsize=9)
        return fig


def plot_summary(result: Any) -> Any:
    """Spectrum, neuron map (when present), logit spectrum and, with a trajectory, training."""
    panels = ["spectrum", "logits"] + (["neurons"] if result.neuron_fractions is not None else [])
    rows = 2 if result.trajectory is not None else 1
    with style.context():
        fig = style.figure(width=5.0 * len(panels), height=4.2 * rows)[0]
        fig.clf()
        grid = fig.add_gridspec(rows, 2 * len(panels))
        plot_spectrum(result, fig.add_subplot(grid[0, 0:2]))
        plot_logit_spectrum(result, fig.add_subplot(grid[0, 2:4]))
        if "neurons" in panels:
            plot_neurons(result, fig.add_subplot(grid[0, 4:6]))
        if rows == 2:
            half = len(panels)
            plot_training(result, (fig.add_subplot(grid[1, :half]),
                                   fig.add_subplot(grid[1, half:])))
        return fig
