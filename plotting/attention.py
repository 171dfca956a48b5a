"""Figures of :class:`analyses.attention.result.AttentionResult`.

Every function takes one Result or several (a mapping ``label -> Result`` or a sequence) and
shows them side by side, e.g. softmax vs Fourier-KArAt attention of the same ViT. Signed maps
(non-softmax attention, ``raw`` rollout) use a diverging colour map centred at zero, so negative
attention is shown, not hidden.

* :func:`plot_heads` - CLS-to-patch attention per layer and head for one image.
* :func:`plot_rollout` - input image, rollout overlaid on it, rollout map, last-layer CLS map.
* :func:`plot_distance` - attention distance, entropy and negative mass per layer and head.
* :func:`plot_spectra` - singular values of the attention matrices (after / before activation).
* :func:`plot_summary` - one figure of all the above for one Result (the CLI's ``--plot``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import style


def _named(results: Any) -> dict[str, Any]:
    if isinstance(results, Mapping):
        return dict(results)
    if isinstance(results, Sequence) and not hasattr(results, "layers"):
        return {f"{i}: {r.model}": r for i, r in enumerate(results)}
    return {results.model: results}


def _gray(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    img = np.asarray(image, dtype=float)
    return img.mean(0) if img.ndim == 3 else img


def _show(ax: Any, m: np.ndarray, vmax: float | None = None, signed: bool | None = None,
          **kw: Any) -> Any:
    m = np.asarray(m, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    signed = bool(np.nanmin(m) < 0) if signed is None else signed
    vmax = float(np.nanmax(np.abs(m))) if vmax is None else vmax
    vmax = vmax if vmax > 0 else 1.0
    if signed:
        im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, **kw)
    else:
        im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax, **kw)
    _bare(ax)
    return im


def _bare(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for sp in ax.spines.values():
        sp.set_visible(False)


def _image_extent(img: np.ndarray) -> tuple[float, float, float, float]:
    h, w = img.shape
    return (-0.5, w - 0.5, h - 0.5, -0.5)


def plot_heads(results: Any, *, layers: Sequence[int] | None = None) -> Any:
    """Grid of CLS-to-patch maps: one row per (result, layer), one column per head, the input
    image first. Colour scale shared along each row (colour bar on the right)."""
    named = _named(results)
    rows = []
    for label, res in named.items():
        idx = range(len(res.layers)) if layers is None else layers
        for i in idx:
            rows.append((label, res, i))
    heads = max(res.layers[i].heads for _, res, i in rows)
    with style.context():
        fig, axes = style.figure(len(rows), heads + 1, width=1.7 * (heads + 1) + 0.6,
                                 height=1.75 * len(rows), squeeze=False)
        for r, (label, res, i) in enumerate(rows):
            lay = res.layers[i]
            img = _gray(res.image)
            ax0 = axes[r, 0]
            if img is not None:
                ax0.imshow(img, cmap="gray")
            _bare(ax0)
            kind = "softmax" if lay.softmax else lay.module_type
            ax0.set_ylabel(f"{label}\n{lay.name}\n({kind})", fontsize=7)
            if r == 0:
                ax0.set_title(f"input #{res.index}" + (f" (y={res.label})"
                                                       if res.label is not None else ""))
            cls = lay.cls_attention
            for h in range(heads):
                ax = axes[r, h + 1]
                if cls is None or h >= lay.heads:
                    ax.axis("off")
                    continue
                vmax = float(np.nanmax(np.abs(cls)))
                im = _show(ax, cls[h], vmax=vmax, signed=bool(np.nanmin(cls) < 0))
                if r == 0:
                    ax.set_title(f"head {h}")
            if cls is not None:
                fig.colorbar(im, ax=axes[r, 1:], shrink=0.85, label="CLS attention")
        fig.suptitle("CLS-to-patch attention per layer and head")
    return fig


def _rollout_map(res: Any, mean: bool = False) -> np.ndarray | None:
    if res.rollout is None:
        return None
    return np.asarray(res.rollout["mean_map" if mean else "map"], dtype=float)


def plot_rollout(results: Any) -> Any:
    """Per result: input image, rollout overlaid on it, rollout map, and the last layer's
    head-mean CLS map (the DINO-style view of the KArAt paper)."""
    named = _named(results)
    with style.context():
        fig, axes = style.figure(len(named), 4, width=10.5, height=2.6 * len(named),
                                 squeeze=False)
        for r, (label, res) in enumerate(named.items()):
            img = _gray(res.image)
            ro = _rollout_map(res)
            ax = axes[r]
            for a in ax:
                _bare(a)
            if img is not None:
                ax[0].imshow(img, cmap="gray")
                ax[1].imshow(img, cmap="gray")
            ax[0].set_ylabel(label, fontsize=8)
            ax[0].set_title(f"input #{res.index}" + (f" (y={res.label})"
                                                     if res.label is not None else ""))
            if ro is not None and ro.ndim == 2:
                signed = bool(np.nanmin(ro) < 0)
                kw = {"extent": _image_extent(img)} if img is not None else {}
                _show(ax[1], ro, signed=signed, alpha=0.55 if img is not None else 1.0, **kw)
                pol = res.rollout["policy"] or "softmax"
                ax[1].set_title(f"rollout overlay ({pol})")
                im = _show(ax[2], ro, signed=signed)
                ax[2].set_title(f"rollout, {res.rollout['head_fusion']} fusion, "
                                f"discard {res.rollout['discard_ratio']:g}", fontsize=8)
                fig.colorbar(im, ax=ax[2], shrink=0.8)
            else:
                ax[1].text(0.5, 0.5, "no rollout\n(rollout=False or no grid)", ha="center",
                           va="center", transform=ax[1].transAxes)
                ax[2].axis("off")
            last = res.layers[-1]
            if last.cls_attention is not None and last.cls_attention.ndim == 3:
                m = last.cls_attention.mean(0)
                im = _show(ax[3], m)
                ax[3].set_title(f"{last.name}: CLS, head mean", fontsize=8)
                fig.colorbar(im, ax=ax[3], shrink=0.8)
            else:
                ax[3].axis("off")
        alphas = {r.rollout["residual"] for r in named.values() if r.rollout is not None}
        alpha = f"{alphas.pop():g}" if len(alphas) == 1 else "alpha"
        fig.suptitle(f"Attention rollout (Abnar & Zuidema 2020), A' = (1 - {alpha}) A + {alpha} I")
    return fig


def _per_layer(ax: Any, named: dict[str, Any], field: str, ylabel: str,
               xlabel: str = "layer (dots: heads, line: head mean)") -> None:
    n = len(named)
    for c, (label, res) in enumerate(named.items()):
        colour = style.PALETTE[c % len(style.PALETTE)]
        xs, means = [], []
        for i, lay in enumerate(res.layers):
            v = getattr(lay, field)
            if v is None:
                continue
            v = np.asarray(v, dtype=float)
            off = (c - (n - 1) / 2) * 0.12
            ax.scatter(np.full(len(v), i + off), v, s=14, color=colour, alpha=0.75,
                       label=label if i == 0 else None)
            xs.append(i + off)
            means.append(np.nanmean(v))
        if xs:
            ax.plot(xs, means, color=colour, lw=1, alpha=0.8)
    layers = max(len(r.layers) for r in named.values())
    ax.set_xticks(range(layers))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_distance(results: Any) -> Any:
    """Attention distance (patch cells), entropy (nats) and negative mass per layer and head."""
    named = _named(results)
    with style.context():
        fig, axes = style.figure(1, 3, width=11.0, height=3.2)
        _per_layer(axes[0], named, "distance", "mean attention distance (patch cells)")
        _per_layer(axes[1], named, "entropy", "attention entropy (nats)")
        _per_layer(axes[2], named, "negative_mass", "negative mass (share of |A|)")
        axes[0].set_title("attention distance")
        axes[1].set_title("entropy")
        axes[2].set_title("negative attention mass")
        axes[0].legend(loc="best")
    return fig


def plot_spectra(results: Any, *, layer: int = -1) -> Any:
    """Singular values of one layer's attention matrices per head: mean over images (line) and
    min-max band; dashed: the scores before the activation (KArAt paper, Figs. 5 and 13)."""
    named = _named(results)
    with style.context():
        fig, axes = style.figure(1, len(named), width=4.2 * len(named), height=3.3,
                                 squeeze=False)
        for c, (label, res) in enumerate(named.items()):
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


def plot_summary(result: Any) -> Any:
    """One figure for one Result: input, rollout overlay and last-layer head maps on top;
    distance, entropy, negative mass and the last layer's spectrum below."""
    res = result
    last = res.layers[-1]
    with style.context():
        fig, ax0 = style.figure(1, 1, width=2.2 * max(2 + last.heads, 4), height=5.4)
        ax0.remove()
        top_fig, bottom_fig = fig.subfigures(2, 1)
        top = np.atleast_1d(top_fig.subplots(1, 2 + last.heads))
        bottom = np.atleast_1d(bottom_fig.subplots(1, 4))
        img = _gray(res.image)
        for a in top:
            _bare(a)
        if img is not None:
            top[0].imshow(img, cmap="gray")
            top[1].imshow(img, cmap="gray")
        top[0].set_title(f"input #{res.index}" + (f" (y={res.label})"
                                                  if res.label is not None else ""))
        ro = _rollout_map(res)
        if ro is not None and ro.ndim == 2:
            kw = {"extent": _image_extent(img)} if img is not None else {}
            _show(top[1], ro, alpha=0.55 if img is not None else 1.0, **kw)
            top[1].set_title(f"rollout ({res.rollout['policy'] or 'softmax'})")
        else:
            top[1].set_title("no rollout")
        cls = last.cls_attention
        for h in range(last.heads):
            ax = top[2 + h]
            if cls is None or cls.ndim != 3:
                ax.axis("off")
                continue
            im = _show(ax, cls[h], vmax=float(np.nanmax(np.abs(cls))),
                       signed=bool(np.nanmin(cls) < 0))
            ax.set_title(f"{last.name} CLS, head {h}", fontsize=7)
        if cls is not None and cls.ndim == 3:
            top_fig.colorbar(im, ax=top[2:], shrink=0.8, label="CLS attention")
        named = {res.model: res}
        for a, field, lab in ((bottom[0], "distance", "distance (patch cells)"),
                              (bottom[1], "entropy", "entropy (nats)"),
                              (bottom[2], "negative_mass", "negative mass (share of |A|)")):
            _per_layer(a, named, field, lab, xlabel="layer (dots: heads)")
        ax = bottom[3]
        for h in range(last.heads):
            ax.plot(np.arange(1, last.spectrum.shape[-1] + 1), last.spectrum[1][h],
                    color=style.PALETTE[h % len(style.PALETTE)], label=f"head {h}")
        ax.set_yscale("log")
        ax.set_xlabel("index")
        ax.set_ylabel("singular value")
        ax.set_title(f"{last.name} spectrum (image mean)", fontsize=8)
        ax.legend(fontsize=6)
        fig.suptitle(f"Attention of {res.model}", fontsize=9)
    return fig
