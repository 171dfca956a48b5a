"""Matplotlib figures inline in a page: base64 PNG ``<img>`` (default) or inline SVG markup.

A PNG keeps dense figures (3-D surfaces, heatmaps) small; SVG keeps line figures sharp. Either
way the page holds the figure itself (``data:`` URL or markup), never a link to a file. The
figure is closed after rendering.

>>> import matplotlib.pyplot as plt
>>> fig, ax = plt.subplots(figsize=(2, 1)); _ = ax.plot([0, 1], [0, 1])
>>> inline(fig, alt="a line").startswith('<img class="figure" alt="a line" width="192" height="96"')
True
"""

from __future__ import annotations

import base64
import io
import re
import struct
from typing import Any

from .html import esc

#: pixels per inch of inline PNGs (CSS pixels at 100 %: figures keep their size in inches)
DPI = 96


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def png_bytes(fig: Any, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    return buf.getvalue()


def image(data: bytes, *, alt: str = "", mime: str = "image/png") -> str:
    """An ``<img>`` holding ``data`` as a ``data:`` URL, with its pixel size."""
    size = ""
    if mime == "image/png":
        w, h = png_size(data)
        size = f' width="{w}" height="{h}"'
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="figure" alt="{esc(alt)}"{size} src="data:{mime};base64,{b64}">'


def svg_markup(fig: Any) -> str:
    """The figure as inline ``<svg>`` markup (XML prologue and comments dropped)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    try:
        fig.savefig(buf, format="svg", facecolor="white")
    finally:
        plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return text.replace("<svg ", '<svg class="figure" ', 1)


def inline(fig: Any, *, alt: str = "", fmt: str = "png", dpi: int = DPI) -> str:
    """``fig`` as inline HTML: ``fmt="png"`` (an ``<img>``) or ``"svg"`` (markup)."""
    if fmt == "svg":
        return svg_markup(fig)
    return image(png_bytes(fig, dpi), alt=alt)


def main_figure(result: Any) -> Any | None:
    """The Result's main figure: its type's :attr:`~inspect_kit.results.Result.main_figure`
    (``"module:function"``) called on it; None when the type names none."""
    import importlib

    spec = getattr(result, "main_figure", None)
    if not spec:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)(result)
