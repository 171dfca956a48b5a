"""The gallery as one self-contained HTML page (``index.html`` beside ``README.md``), written by
the report's code: the same page, style, script, tables and provenance blocks.

Each gallery section is a part of the page; each figure is embedded from the PNG the README
links (the same bytes), with its caption and key numbers. Where a figure was drawn from one
Result, the part adds that Result's interactive charts (once per Result) and its provenance.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from inspect_kit.io import atomic_write
from plotting.report import html as H
from plotting.report.figures import image
from plotting.report.page import Part, render
from plotting.report.views import view_of

#: the page's file name, beside README.md
PAGE = "index.html"


def slug(title: str) -> str:
    """An anchor for a section title.

    >>> slug("Two MLPs on digits: curvature, spectra")
    'two-mlps-on-digits-curvature-spectra'
    """
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _entry(g: Any, e: Any, drawn: set[int]) -> str:
    parts = [f"<h3>{H.esc(e.title)}</h3>",
             '<div class="static">' + image((g.out / e.file).read_bytes(), alt=e.title) + "</div>",
             f'<p class="intro">{H.esc(e.caption)}</p>']
    if e.numbers:
        parts.append(H.table([{"quantity": k, "value": v} for k, v in e.numbers.items()]))
    if e.result is not None and id(e.result) not in drawn:
        drawn.add(id(e.result))
        charts = view_of(e.result).charts
        if charts:
            parts.append('<div class="charts">' + "".join(charts) + "</div>")
        parts.append(H.provenance(e.result.provenance))
    return "\n".join(parts)


def write_page(g: Any, sections: list[str], seconds: float) -> Path:
    """Write ``<out>/index.html`` for the gallery ``g`` (its entries, notes and timing)."""
    drawn: set[int] = set()
    parts = []
    for s in sections:
        notes = "".join(f"<p>{H.esc(n)}</p>" for n in g.section_notes.get(s, []))
        entries = "\n".join(_entry(g, e, drawn) for e in g.entries if e.section == s)
        parts.append(Part(slug(s), s, notes + entries))
    meta = (f"rendered by <code>inspect-kit gallery{' --quick' if g.quick else ''}</code> in "
            f"{seconds:.0f} s; {len(g.entries)} figures")
    intro = ('<p class="intro">Every model is trained here, seeded, on bundled data; every '
             "number comes from the analysis that drew the figure beside it. The same figures "
             "are linked from README.md.</p>")
    path = g.out / PAGE
    with atomic_write(path) as fh:
        fh.write(render("inspect-kit gallery", parts, meta=meta, intro=intro))
    return path
