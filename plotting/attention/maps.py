"""Attention maps of one input: per layer and head (:func:`plot_heads`), token x token matrices
(:func:`plot_matrix`) and the rollout row (:func:`plot_rollout`)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import style
from .draw import (
    bare,
    bars,
    gray,
    heatmap,
    image_extent,
    named,
    panel_values,
    query_panel,
    query_title,
    show,
)


def _input_title(res: Any) -> str:
    return f"input #{res.index}" + (f" (y={res.label})" if res.label is not None else "")


def plot_heads(results: Any, *, layers: Sequence[int] | None = None) -> Any:
    """One row per (result, layer), one column per head, the input first: image patches as
    images, token sequences as per-token bars of the query's row (first column: the layer's
    token x token matrix), Swin windows as window maps with their borders. Scale shared along
    each row."""
    rows = []
    for label, res in named(results).items():
        idx = range(len(res.layers)) if layers is None else layers
        rows.extend((label, res, i) for i in idx)
    heads = max(res.layers[i].heads for _, res, i in rows)
    with style.context():
        fig, axes = style.figure(len(rows), heads + 1, width=1.7 * (heads + 1) + 0.6,
                                 height=1.75 * len(rows), squeeze=False)
        for r, (label, res, i) in enumerate(rows):
            lay = res.layers[i]
            ax0 = axes[r, 0]
            if res.kind == "sequence" and lay.matrix is not None:
                heatmap(ax0, lay.matrix, res)
            else:
                img = gray(res.image)
                if img is not None:
                    ax0.imshow(img, cmap="gray")
                bare(ax0)
            kind = "softmax" if lay.softmax else lay.module_type
            ax0.set_ylabel(f"{label}\n{lay.name}\n({kind})", fontsize=7)
            if r == 0:
                ax0.set_title(_input_title(res), fontsize=8)
            values = panel_values(lay)
            im = None
            for h in range(heads):
                ax = axes[r, h + 1]
                if values is None or h >= lay.heads:
                    ax.axis("off")
                    continue
                vmax = float(np.nanmax(np.abs(values)))
                im = query_panel(ax, res, lay, h, vmax, bool(np.nanmin(values) < 0)) or im
                if r == 0:
                    ax.set_title(f"head {h}", fontsize=8)
            if im is not None:
                what = "received" if lay.window_map is not None else "attention"
                fig.colorbar(im, ax=axes[r, 1:], shrink=0.85, label=what)
        first = next(iter(named(results).values()))
        fig.suptitle(query_title(first))
    return fig


def plot_matrix(results: Any, *, layers: Sequence[int] | None = None) -> Any:
    """Token x token attention (head mean) of the chosen input, one panel per layer and
    result; padding rows and columns blank. For token sequences (``matrix`` is stored)."""
    panels = []
    for label, res in named(results).items():
        idx = range(len(res.layers)) if layers is None else layers
        panels.extend((label, res, res.layers[i]) for i in idx if res.layers[i].matrix is not None)
    if not panels:
        from inspect_kit.errors import OptionError

        raise OptionError("no layer has a stored token x token matrix (sequences of up to 256 "
                          "tokens have one); use plot_heads for images and windows")
    with style.context():
        fig, axes = style.figure(1, len(panels), width=3.2 * len(panels), height=3.4,
                                 squeeze=False)
        for ax, (label, res, lay) in zip(axes[0], panels):
            im = heatmap(ax, lay.matrix, res)
            ax.set_title(f"{label}\n{lay.name}", fontsize=7)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.suptitle("attention, head mean (rows: queries, columns: keys)")
    return fig


def _rollout_map(res: Any, mean: bool = False) -> np.ndarray | None:
    if res.rollout is None:
        return None
    return np.asarray(res.rollout["mean_map" if mean else "map"], dtype=float)


def rollout_panel(ax: Any, res: Any, *, overlay: bool = True) -> Any:
    """The rollout row of the chosen input: over the image (patch grid) or as per-token bars."""
    ro = _rollout_map(res)
    if ro is None:
        ax.text(0.5, 0.5, "no rollout\n" + str(res.provenance.get("rollout", "")), ha="center",
                va="center", transform=ax.transAxes, fontsize=6, wrap=True)
        bare(ax)
        return None
    pol = res.rollout["policy"] or "softmax"
    if ro.ndim == 2:
        img = gray(res.image)
        kw = {"extent": image_extent(img)} if img is not None and overlay else {}
        if kw:
            ax.imshow(img, cmap="gray")
        im = show(ax, ro, signed=bool(np.nanmin(ro) < 0), alpha=0.55 if kw else 1.0, **kw)
        ax.set_title(f"rollout ({pol}), token {res.query}", fontsize=8)
        return im
    bars(ax, ro, res, offset=res.prefix_tokens if res.kind == "image" else 0, colour="C1")
    ax.set_title(f"rollout ({pol}) into token {res.query}", fontsize=8)
    ax.set_xlabel("token", fontsize=7)
    return None


def plot_rollout(results: Any) -> Any:
    """Per result: the input, the rollout of the query token (over the image, or per-token bars
    for sequences, with what the row means), the rollout mean over inputs, and the last
    layer's head-mean query row (image) or token x token matrix (sequence)."""
    nm = named(results)
    with style.context():
        fig, axes = style.figure(len(nm), 4, width=11.5, height=2.8 * len(nm), squeeze=False)
        for r, (label, res) in enumerate(nm.items()):
            ax = axes[r]
            img = gray(res.image)
            if img is not None:
                ax[0].imshow(img, cmap="gray")
            bare(ax[0])
            ax[0].set_ylabel(label, fontsize=8)
            ax[0].set_title(_input_title(res), fontsize=8)
            if res.rollout is not None and res.kind == "sequence":
                ax[0].text(0.0, 0.5, textwrap.fill(res.rollout["reading"], 38), fontsize=7,
                           transform=ax[0].transAxes, va="center")
            im = rollout_panel(ax[1], res)
            if im is not None:
                fig.colorbar(im, ax=ax[1], shrink=0.8)
            mean = _rollout_map(res, mean=True)
            if mean is not None and mean.ndim == 2:
                fig.colorbar(show(ax[2], mean), ax=ax[2], shrink=0.8)
            elif mean is not None:
                bars(ax[2], mean, res, offset=res.prefix_tokens if res.kind == "image" else 0,
                     colour="C1", padding=False)
            else:
                ax[2].axis("off")
            ax[2].set_title("rollout, mean over inputs", fontsize=8)
            last = res.layers[-1]
            if res.kind == "sequence" and last.matrix is not None:
                fig.colorbar(heatmap(ax[3], last.matrix, res), ax=ax[3], shrink=0.8)
                ax[3].set_title(f"{last.name}: head mean", fontsize=8)
            elif last.query_attention is not None and last.query_attention.ndim == 3:
                fig.colorbar(show(ax[3], last.query_attention.mean(0)), ax=ax[3], shrink=0.8)
                ax[3].set_title(f"{last.name}: token {res.query}, head mean", fontsize=8)
            else:
                ax[3].axis("off")
        alphas = {r.rollout["residual"] for r in nm.values() if r.rollout is not None}
        alpha = f"{alphas.pop():g}" if len(alphas) == 1 else "alpha"
        fig.suptitle(f"Attention rollout (Abnar & Zuidema 2020), A' = (1 - {alpha}) A + {alpha} I")
    return fig
