"""The KAN network diagram: one vector figure drawn from sampled edge curves.

Inputs at the bottom, outputs at the top (pykan's orientation). Every drawn edge runs from its
input node to a small frame holding the edge's sampled curve (``EdgeSamples.x/y``), then on to its
output node; the frames of a layer sit in one row between the two node rows, ordered by input
node, so they never overlap. Opacity is pykan's ``tanh(beta * score)`` of the backward attribution
when an :class:`~inspect_kit.kan.attribution.AttributionResult` is given. Edges with a symbolic
fit (``fits={(l, j, i): "sin", ...}``) are drawn in red with the function name under the frame;
masked edges are faint dotted lines.

Edges, curve frames and curves are three ``LineCollection`` artists (gids "edges", "frames",
"curves"), so the figure stays light and saves as a compact SVG/PDF. Large layers are thinned out:
at most ``max_curves`` edges per layer (the highest-scoring ones, or the largest curve spread
without scores) get a curve frame, the next ``max_lines`` are plain lines with the same opacity
rule, the rest are not drawn; the figure title says how many were shown. Node positions come from
networkx's layered (multipartite) layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inspect_kit.errors import OptionError
from plotting import style

SPLINE_COLOR = "#222222"
FIT_COLOR = "#d62728"
MASK_COLOR = "#9a9a9a"


def _node_x(widths: list[int]) -> list[np.ndarray]:
    """Per layer the x position of each node (networkx multipartite layout, order kept), in [0, 1]."""
    import networkx as nx

    g = nx.Graph()
    for l, w in enumerate(widths):
        g.add_nodes_from(((l, n) for n in range(w)), layer=l)
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal")
    xs = [np.sort([pos[(l, n)][0] for n in range(w)]) for l, w in enumerate(widths)]
    lo = min(x.min() for x in xs)
    hi = max(x.max() for x in xs)
    span = hi - lo if hi > lo else 1.0
    return [0.04 + 0.92 * (x - lo) / span if hi > lo else np.full(len(x), 0.5) for x in xs]


def _alpha(score: float | None, beta: float) -> float:
    return 0.85 if score is None else float(np.tanh(beta * max(score, 0.0)))


def diagram(
    result_or_samples: Any,
    scores: Any = None,
    fits: dict[tuple[int, int, int], str] | None = None,
    *,
    beta: float = 3.0,
    relative: bool | None = None,
    max_curves: int = 40,
    max_lines: int = 200,
    in_vars: list[str] | None = None,
    out_vars: list[str] | None = None,
    title: str | None = None,
) -> Any:
    """Draw the network from sampled edges (+ optional attribution scores and symbolic fits).

    Args:
        result_or_samples: an :class:`~inspect_kit.kan.sampling.EdgeSamples`, or a Result with a
            ``samples`` attribute holding one. Never a model.
        scores: an AttributionResult (its ``edge_scores``) or a list of ``(n_sub_out, n_in)`` arrays.
        fits: ``{(layer, out, in): name}`` of edges replaced by a formula.
        beta: opacity ``tanh(beta * score)`` (pykan's rule).
        relative: use ``score / max score`` instead of the score (None: only when every score is
            below 0.3, as in wide classifiers whose output-averaged scores are all small).
        max_curves: most curve frames per layer; other edges are plain lines.
        max_lines: most plain lines per layer (the highest-ranked); the rest are not drawn.
    """
    from inspect_kit.kan.sampling import EdgeSamples

    samples = getattr(result_or_samples, "samples", result_or_samples)
    if not isinstance(samples, EdgeSamples):
        raise OptionError(f"diagram takes EdgeSamples (from inspect_kit.kan.sampling.sample_edges), got "
                          f"{type(result_or_samples).__name__}; sample the model first")
    if len(samples.widths) < 2:
        raise OptionError(f"these {samples.family} samples describe no network (no layer widths); "
                          "plot their curves directly (samples.x, samples.y) instead of a diagram")
    edge_sc = None
    if scores is not None:
        edge_sc = [np.asarray(s, dtype=float) for s in getattr(scores, "edge_scores", scores)]
        if [s.shape for s in edge_sc] != [tuple(e) for e in samples.edge_shapes]:
            raise OptionError(f"scores have shapes {[s.shape for s in edge_sc]} but the samples' edges are "
                              f"{samples.edge_shapes}; attribute and sample the same model")
    fits = {tuple(int(v) for v in k): str(n) for k, n in (fits or {}).items()}
    rel_note = ""
    if edge_sc is not None:
        top = max(float(np.nanmax(s)) if s.size else 0.0 for s in edge_sc)
        if (relative is None and 0 < top < 0.3) or (relative and top > 0):
            edge_sc = [s / top for s in edge_sc]
            rel_note = " / max score"
    with style.context():
        return _draw(samples, edge_sc, fits, beta, (int(max_curves), int(max_lines)), in_vars, out_vars,
                     title, rel_note)


def _draw(samples: Any, edge_sc: list[np.ndarray] | None, fits: dict, beta: float, limits: tuple[int, int],
          in_vars: list[str] | None, out_vars: list[str] | None, title: str | None, rel_note: str) -> Any:
    from matplotlib.collections import LineCollection

    max_curves, max_lines = limits
    widths, L = list(samples.widths), len(samples.widths) - 1
    node_x = _node_x(widths)
    rows = samples._rows()
    y_np, x_np = samples.y.detach().double().numpy(), samples.x.detach().double().numpy()
    n_slots = [min(max_curves, int(np.prod(s))) for s in samples.edge_shapes]
    fig_w = float(np.clip(1.2 + 0.42 * max(max(n_slots), max(widths) * 0.5), 4.5, 14.0))
    fig, ax = style.figure(width=fig_w, height=1.2 + 2.0 * L)
    lines, colors, styles = [], [], []
    curves, curve_colors, frames, frame_colors = [], [], [], []
    shown_note = []
    for l in range(L):
        n_out, n_in = samples.edge_shapes[l]
        sub_owner, in_owner = samples.subnode_owner[l], samples.input_owner[l]
        idx = [(j, i) for j in range(n_out) for i in range(n_in) if (l, j, i) in rows]
        sc = {(j, i): (None if edge_sc is None else float(edge_sc[l][j, i])) for j, i in idx}
        spread = {(j, i): float(np.ptp(y_np[rows[(l, j, i)]])) for j, i in idx}
        rank = sorted(idx, key=lambda e: -(sc[e] if sc[e] is not None else spread[e]))
        with_curve = set(rank[:max_curves])
        as_line = rank[max_curves : max_curves + max_lines]
        if len(idx) > max_curves:
            shown_note.append(f"layer {l}: top {max_curves} of {len(idx)} edges as curves, "
                              f"next {len(as_line)} as lines")
        # slots ordered by input node position, then output node position
        curve_edges = sorted(with_curve, key=lambda e: (node_x[l][in_owner[e[1]]], e[1],
                                                         node_x[l + 1][sub_owner[e[0]]], e[0]))
        k = len(curve_edges)
        gw = min(0.75 / max(k, 1), 0.14)
        slot_x = np.linspace(gw / 2, 1 - gw / 2, k) if k > 1 else np.array([0.5])
        gh = 0.32
        cy = l + 0.5
        for (j, i), sx in zip(curve_edges, slot_x):
            r = rows[(l, j, i)]
            masked = bool(samples.masked[r])
            fit = fits.get((l, j, i))
            a = 0.25 if masked else _alpha(sc[(j, i)], beta)
            color = MASK_COLOR if masked else (FIT_COLOR if fit else SPLINE_COLOR)
            x0, x1 = node_x[l][in_owner[i]], node_x[l + 1][sub_owner[j]]
            lines += [[(x0, l), (sx, cy - gh / 2)], [(sx, cy + gh / 2), (x1, l + 1)]]
            colors += [_rgba(color, a)] * 2
            styles += [":" if masked else "-"] * 2
            x_lo, x_hi, y_lo, y_hi = sx - gw / 2, sx + gw / 2, cy - gh / 2, cy + gh / 2
            frames.append([(x_lo, y_lo), (x_hi, y_lo), (x_hi, y_hi), (x_lo, y_hi), (x_lo, y_lo)])
            frame_colors.append(_rgba(color, max(a, 0.15)))
            xc, yc = x_np[r], y_np[r]
            xr = (xc - xc.min()) / (np.ptp(xc) or 1.0)
            yr = (yc - yc.min()) / np.ptp(yc) if np.ptp(yc) > 1e-12 else np.full_like(yc, 0.5)
            curves.append(np.column_stack([sx - gw * 0.42 + 0.84 * gw * xr, cy - gh * 0.42 + 0.84 * gh * yr]))
            curve_colors.append(_rgba(color, max(a, 0.1)))
            if fit:
                ax.text(sx, cy - gh / 2 - 0.03, fit, ha="center", va="top", fontsize=6, color=FIT_COLOR)
        for j, i in as_line:
            masked = bool(samples.masked[rows[(l, j, i)]])
            a = 0.05 if masked else _alpha(sc[(j, i)], beta) * 0.3
            if a < 0.01:
                continue
            lines.append([(node_x[l][in_owner[i]], l), (node_x[l + 1][sub_owner[j]], l + 1)])
            colors.append(_rgba(MASK_COLOR if masked else SPLINE_COLOR, a))
            styles.append(":" if masked else "-")
    ax.add_collection(LineCollection(lines, colors=colors, linestyles=styles, linewidths=0.7, gid="edges"))
    ax.add_collection(LineCollection(frames, colors=frame_colors, linewidths=0.5, gid="frames"))
    ax.add_collection(LineCollection(curves, colors=curve_colors, linewidths=1.0, capstyle="round",
                                     gid="curves"))
    _draw_nodes(ax, samples, node_x, widths, in_vars, out_vars)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.35, L + 0.35)
    ax.set_axis_off()
    kind = "partial dependence" if samples.family == "partial_dependence" else f"{samples.family} KAN"
    head = title or f"{kind} {widths}"
    sub = (f"opacity = tanh({beta:g} x attribution{rel_note})" if edge_sc is not None
           else "edges from sampled curves")
    if fits:
        sub += "; red = symbolic fit"
    if samples.input_note and samples.family == "fastkan":
        sub += "\ntwo curves per node pair: RBF part in u = LayerNorm(h), base part in h"
    if shown_note:
        sub += "\n" + "; ".join(shown_note) + " (ranked by score), rest not drawn"
    ax.set_title(f"{head}\n{sub}", fontsize=9)
    return fig


def _rgba(color: str, alpha: float) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    return to_rgba(color, float(np.clip(alpha, 0.0, 1.0)))


def _draw_nodes(ax: Any, samples: Any, node_x: list[np.ndarray], widths: list[int],
                in_vars: list[str] | None, out_vars: list[str] | None) -> None:
    L = len(widths) - 1
    size = 18 if max(widths) <= 20 else 6
    for l, w in enumerate(widths):
        mult = set()
        if l >= 1:
            owners = samples.subnode_owner[l - 1]
            mult = {n for n in range(w) if owners.count(n) > 1}
        plain = [n for n in range(w) if n not in mult]
        ax.scatter(node_x[l][plain], np.full(len(plain), l), s=size, color="black", zorder=3)
        for n in mult:
            ax.text(node_x[l][n], l, "×", ha="center", va="center", fontsize=11, zorder=4,
                    bbox={"boxstyle": "circle,pad=0.1", "fc": "white", "ec": "black", "lw": 0.6})
    label_every = max(1, int(np.ceil(widths[0] / 24)))
    names_in = in_vars or [f"$x_{{{i + 1}}}$" for i in range(widths[0])]
    for i in range(0, widths[0], label_every):
        ax.text(node_x[0][i], -0.12, names_in[i], ha="center", va="top", fontsize=7 if widths[0] > 12 else 9)
    names_out = out_vars or [f"$y_{{{k + 1}}}$" for k in range(widths[-1])]
    out_every = max(1, int(np.ceil(widths[-1] / 24)))
    for k in range(0, widths[-1], out_every):
        ax.text(node_x[L][k], L + 0.1, names_out[k], ha="center", va="bottom", fontsize=9)
