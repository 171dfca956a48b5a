"""Small interactive SVG charts written by hand: lines and points with hover values, and heatmaps
with the value of every cell.

Every data point is an SVG element carrying its numbers (``data-x``, ``data-y`` or ``data-z``,
its index ``data-i``) and a hover text (``data-tip``, also as a ``<title>`` so browsers without
the page's script still show it). The page's script (:data:`SCRIPT`) turns the hover text into a
readout beside the point; printed, the chart is a plain static vector picture (the readout is
hidden by the print style). No library, no external file.

>>> svg = chart([Series("f", [1, 2, 3], [1.0, 4.0, 9.0])], title="squares", xlabel="x",
...             ylabel="y", key="demo")
>>> svg.count('data-tip="f: x = 2, y = 4"')
1
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .html import esc, fmt

#: series colours (the kit's palette)
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]

#: at most this many hover points per series (evenly thinned; the line keeps every point)
MAX_POINTS = 600

#: a log axis spans at most this many decades below the largest value (smaller ones not drawn)
LOG_DECADES = 8

#: the page's hover script: one readout per chart, positioned beside the hovered element
SCRIPT = """
(function () {
  document.querySelectorAll('figure.ik-chart').forEach(function (fig) {
    var tip = fig.querySelector('.ik-tip');
    fig.querySelectorAll('[data-tip] > title').forEach(function (t) { t.remove(); });
    fig.addEventListener('mouseover', function (ev) {
      var el = ev.target.closest('[data-tip]');
      if (!el || !fig.contains(el)) { return; }
      var box = fig.getBoundingClientRect(), r = el.getBoundingClientRect();
      tip.textContent = el.getAttribute('data-tip');
      tip.hidden = false;
      tip.style.left = Math.min(r.right - box.left + 6, box.width - 190) + 'px';
      tip.style.top = Math.max(r.top - box.top - 28, 0) + 'px';
      el.classList.add('on');
    });
    fig.addEventListener('mouseout', function (ev) {
      var el = ev.target.closest('[data-tip]');
      if (el) { el.classList.remove('on'); tip.hidden = true; }
    });
  });
  window.addEventListener('beforeprint', function () {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  });
})();
"""


@dataclasses.dataclass
class Series:
    """One series of a :func:`chart`: ``style`` is ``"line"``, ``"points"`` or ``"both"``;
    ``err`` symmetric error bars; ``tips`` the hover text per point (default: label, x, y)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    style: str = "both"
    err: Sequence[float] | None = None
    tips: Sequence[str] | None = None
    colour: str | None = None


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2, 5 x 10^k steps) covering ``[lo, hi]``.

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(start, int(math.floor(hi / step + 1e-9)) + 1)]


class Scale:
    """A linear or log10 map from data to pixels (``log`` drops values <= 0)."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False,
                 pad: float = 0.04, fixed: Sequence[float] | None = None):
        self.log, self.fixed = log, fixed
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        margin = pad * (hi - lo)
        self.lo, self.hi, self.p0, self.p1 = lo - margin, hi + margin, p0, p1

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        """Tick values: round steps, or decades on a log axis (with 2 and 5 between them when
        the axis spans less than two decades)."""
        if self.fixed is not None:
            return [t for t in self.fixed if self.lo <= t <= self.hi]
        if not self.log:
            return [t for t in nice_ticks(self.lo, self.hi) if self.lo <= t <= self.hi]
        every = max(1, math.ceil((self.hi - self.lo) / 6))  # at most ~6 decade labels
        decades = range(math.floor(self.lo), math.ceil(self.hi) + 1)
        steps = (1, 2, 5) if self.hi - self.lo < 2 else (1,)
        return [m * 10.0 ** k for k in decades if k % every == 0 for m in steps
                if self.lo <= math.log10(m * 10.0 ** k) <= self.hi]

    def label(self, t: float) -> str:
        """A tick's text: ``%g`` on a log axis (0.01, 2e-05, 1e+06); on a linear one as many
        decimals as the tick step needs (steps of 0.0005 -> "2.8305", "2.8310")."""
        if self.log or self.fixed is not None:
            return f"{t:g}"
        ticks = nice_ticks(self.lo, self.hi)
        if len(ticks) < 2 or not 1e-4 <= max(abs(self.lo), abs(self.hi)) < 1e6:
            return f"{t:.3g}"
        return f"{t:.{max(0, -math.floor(math.log10(ticks[1] - ticks[0])))}f}"


def _ok(v: Any, log: bool) -> bool:
    return v is not None and math.isfinite(float(v)) and (not log or float(v) > 0)


def _runs(points: list[tuple[int, float, float]]) -> list[list[tuple[int, float, float]]]:
    """Runs of consecutive indices with at least two points (the pieces of a broken line)."""
    runs: list[list[tuple[int, float, float]]] = []
    for q in points:
        if runs and runs[-1][-1][0] == q[0] - 1:
            runs[-1].append(q)
        else:
            runs.append([q])
    return [r for r in runs if len(r) > 1]


def _frame(title: str, key: str, width: int, height: int, inner: str, note: str = "") -> str:
    return (f'<figure class="ik-chart" data-chart="{esc(key)}" style="width:{width}px">'
            f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{esc(title)}">{inner}</svg>'
            f'<div class="ik-tip" hidden></div>'
            f'<figcaption>{esc(title)}{(" — " + esc(note)) if note else ""}'
            f' <span class="hint">(hover for values)</span></figcaption></figure>')


def _axes(sx: Scale, sy: Scale, xlabel: str, ylabel: str, box: tuple[float, float, float, float],
          grid: bool = True) -> str:
    x0, y0, x1, y1 = box
    out = [f'<rect class="plot" x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}"/>']
    for t in sx.ticks():
        px = sx(t)
        out.append((f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y1}"/>'
                    if grid else "") + f'<text class="tick" x="{px:.1f}" y="{y0 + 14}" text-anchor="middle">'
                   f"{esc(sx.label(t))}</text>")
    for t in sy.ticks():
        py = sy(t)
        out.append((f'<line class="grid" x1="{x0}" x2="{x1}" y1="{py:.1f}" y2="{py:.1f}"/>'
                    if grid else "") + f'<text class="tick" x="{x0 - 5}" y="{py + 3:.1f}" text-anchor="end">'
                   f"{esc(sy.label(t))}</text>")
    out.append(f'<text class="label" x="{(x0 + x1) / 2}" y="{y0 + 32}" text-anchor="middle">'
               f"{esc(xlabel)}</text>")
    out.append(f'<text class="label" transform="translate(14 {(y0 + y1) / 2}) rotate(-90)" '
               f'text-anchor="middle">{esc(ylabel)}</text>')
    return "".join(out)


def chart(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, key: str,
          xlog: bool = False, ylog: bool = False, xticks: Sequence[float] | None = None,
          width: int = 520, height: int = 300) -> str:
    """A line/point chart of ``series`` with hover values (non-finite points, and points <= 0
    on a log axis, are left out and counted in the caption); ``xticks`` fixes the x ticks
    (e.g. whole layer numbers)."""
    pts = [[(i, float(x), float(y)) for i, (x, y) in enumerate(zip(s.x, s.y))
            if _ok(x, xlog) and _ok(y, ylog)] for s in series]
    if ylog and any(pts):
        floor = max(y for p in pts for _, _, y in p) * 10.0 ** -LOG_DECADES
        pts = [[q for q in p if q[2] >= floor] for p in pts]
    dropped = sum(len(s.x) for s in series) - sum(len(p) for p in pts)
    xs = [x for p in pts for _, x, _ in p]
    ys = [y for p in pts for _, _, y in p]
    for s, p in zip(series, pts):
        if s.err is not None:
            ys += [y + float(s.err[i]) for i, _, y in p if _ok(s.err[i], False)]
            ys += [y - float(s.err[i]) for i, _, y in p if _ok(s.err[i], False)
                   and (not ylog or y - float(s.err[i]) > 0)]
    if not xs:
        return _frame(title, key, width, 60, '<text x="10" y="30">no finite values</text>')
    box = (62.0, height - 42.0, width - 12.0, 12.0 + (14 if len(series) > 1 else 0))
    sx = Scale(min(xs), max(xs), box[0], box[2], xlog, fixed=xticks)
    sy = Scale(min(ys), max(ys), box[1], box[3], ylog)
    out = [_axes(sx, sy, xlabel, ylabel, box)]
    for k, (s, p) in enumerate(zip(series, pts)):
        colour = s.colour or COLOURS[k % len(COLOURS)]
        out.append(f'<g class="series" data-series="{esc(s.label)}" style="--c:{colour}">')
        if s.style in ("line", "both"):
            for run in _runs(p):  # a line never bridges points that are not drawn
                path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for _, x, y in run)
                out.append(f'<polyline class="line" points="{path}"/>')
        step = max(1, math.ceil(len(p) / MAX_POINTS))
        for i, x, y in p[::step]:
            if s.err is not None and _ok(s.err[i], False):
                e = float(s.err[i])
                lo = y - e if not ylog or y - e > 0 else y
                out.append(f'<line class="err" x1="{sx(x):.1f}" x2="{sx(x):.1f}" '
                           f'y1="{sy(lo):.1f}" y2="{sy(y + e):.1f}"/>')
            tip = s.tips[i] if s.tips is not None else f"{s.label}: x = {fmt(x)}, y = {fmt(y)}"
            cls = "pt" if s.style in ("points", "both") else "pt hover-only"
            out.append(f'<circle class="{cls}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" '
                       f'data-i="{i}" data-x="{x!r}" data-y="{y!r}" data-tip="{esc(tip)}">'
                       f"<title>{esc(tip)}</title></circle>")
        out.append("</g>")
    if len(series) > 1:
        x = box[0]
        for k, s in enumerate(series):
            colour = s.colour or COLOURS[k % len(COLOURS)]
            out.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>'
                       f'<text class="tick" x="{x + 14}" y="15">{esc(s.label)}</text>')
            x += 24 + 6.5 * len(s.label)
    note = (f"{dropped} values not drawn (non-finite" + (", or more than "
            f"{LOG_DECADES} decades below the largest" if ylog else "") + ")") if dropped else ""
    return _frame(title, key, width, height, "".join(out), note)


def _colours(z: np.ndarray, cmap: str) -> tuple[list[list[str]], float, float]:
    from matplotlib import colormaps, colors

    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = (z - lo) / (hi - lo) if hi > lo else np.zeros_like(z)
    rgba = colormaps[cmap](np.nan_to_num(norm, nan=0.0))
    hexes = [[colors.to_hex(c) if np.isfinite(z[i, j]) else "#dddddd"
              for j, c in enumerate(row)] for i, row in enumerate(rgba)]
    return hexes, lo, hi


def heatmap(z: Any, xs: Sequence[float], ys: Sequence[float], *, title: str, xlabel: str,
            ylabel: str, zlabel: str, key: str, cmap: str = "viridis", width: int = 480,
            height: int = 400, mark: tuple[float, float] | None = (0.0, 0.0),
            names: tuple[str, str] | None = None) -> str:
    """A heatmap of ``z[i, j]`` at ``(xs[i], ys[j])`` (x right, y up), one rectangle per cell
    with its value on hover (``names`` of the coordinates there; default the axis labels), a
    colour bar and ``mark`` (default the origin) as a cross."""
    xname, yname = names or (xlabel, ylabel)
    z = np.asarray(z, dtype=float)
    hexes, lo, hi = _colours(z, cmap)
    box = (62.0, height - 42.0, width - 100.0, 12.0)
    xs, ys = [float(v) for v in xs], [float(v) for v in ys]
    cw = (box[2] - box[0]) / len(xs)
    ch = (box[1] - box[3]) / len(ys)
    sx = Scale(xs[0], xs[-1], box[0] + cw / 2, box[2] - cw / 2, pad=0.0)
    sy = Scale(ys[0], ys[-1], box[1] - ch / 2, box[3] + ch / 2, pad=0.0)
    out = [_axes(sx, sy, xlabel, ylabel, box, grid=False)]
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            tip = f"{xname} = {fmt(x)}, {yname} = {fmt(y)}: {zlabel} = {fmt(z[i, j])}"
            out.append(f'<rect class="cell" x="{box[0] + i * cw:.2f}" '
                       f'y="{box[1] - (j + 1) * ch:.2f}" width="{cw + 0.3:.2f}" '
                       f'height="{ch + 0.3:.2f}" fill="{hexes[i][j]}" data-i="{i}" data-j="{j}" '
                       f'data-x="{x!r}" data-y="{y!r}" data-z="{float(z[i, j])!r}" '
                       f'data-tip="{esc(tip)}"><title>{esc(tip)}</title></rect>')
    if mark is not None and xs[0] <= mark[0] <= xs[-1] and ys[0] <= mark[1] <= ys[-1]:
        mx, my = sx(mark[0]), sy(mark[1])
        out.append(f'<path class="mark" d="M{mx - 6:.1f},{my:.1f}h12M{mx:.1f},{my - 6:.1f}v12"/>')
    out.append(_colourbar(cmap, lo, hi, box, zlabel, key))
    return _frame(title, key, width, height, "".join(out))


def _colourbar(cmap: str, lo: float, hi: float, box: tuple[float, float, float, float],
               zlabel: str, key: str) -> str:
    from matplotlib import colormaps, colors

    gid = f"cb-{esc(key)}"
    stops = "".join(f'<stop offset="{t:.2f}" stop-color="{colors.to_hex(colormaps[cmap](t))}"/>'
                    for t in np.linspace(0, 1, 11))
    x = box[2] + 14
    return (f'<defs><linearGradient id="{gid}" x1="0" y1="1" x2="0" y2="0">{stops}'
            f'</linearGradient></defs><rect x="{x}" y="{box[3]}" width="12" '
            f'height="{box[1] - box[3]}" fill="url(#{gid})"/>'
            f'<text class="tick" x="{x + 15}" y="{box[3] + 8}">{esc(fmt(hi))}</text>'
            f'<text class="tick" x="{x + 15}" y="{box[1]}">{esc(fmt(lo))}</text>'
            f'<text class="label" transform="translate({x + 40} {(box[1] + box[3]) / 2}) '
            f'rotate(-90)" text-anchor="middle">{esc(zlabel)}</text>')
