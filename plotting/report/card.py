"""A Result in a notebook (``Result._repr_html_``): a compact table and the main figure.

The card is one ``<div>``: a line naming the Result type, the analysis, its seed and time; the
key numbers (:meth:`~inspect_kit.results.Result.headline`, value ± standard error); the first
rows of its table; the main figure as an inline PNG. Its own small style travels with it, so
the card looks the same in Jupyter, VS Code or an exported notebook.
"""

from __future__ import annotations

from typing import Any

from . import html as H
from .views import rows_of, static_figure, view_of

#: rows of the Result's table shown in a card
CARD_ROWS = 8

STYLE = """<style>
.ik-card{font:13px/1.4 system-ui,sans-serif;max-width:1000px}
.ik-card .numbers{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}
.ik-card .kn{border:1px solid #ddd;border-radius:4px;padding:3px 8px}
.ik-card .kn .k{color:#555;margin-right:6px}.ik-card .kn .v{font-weight:600}
.ik-card table{border-collapse:collapse;font-size:12px}
.ik-card td,.ik-card th{border-bottom:1px solid #eee;padding:2px 8px;text-align:left}
.ik-card td.num{text-align:right;font-variant-numeric:tabular-nums}
.ik-card img.figure{max-width:100%;height:auto}
.ik-card .note{color:#666;font-size:12px}
</style>"""


def card_html(result: Any) -> str:
    """The card of ``result`` (see the module docstring)."""
    prov = result.provenance or {}
    secs = prov.get("seconds")
    head = (f"<strong>{H.esc(type(result).__name__)}</strong> · {H.esc(result.analysis)}"
            + (f" · seed {H.esc(prov['seed'])}" if prov.get("seed") is not None else "")
            + (f" · {secs:.2f} s" if isinstance(secs, (int, float)) else ""))
    parts = [STYLE, '<div class="ik-card">', f"<div>{head}</div>", H.numbers(result.headline())]
    rows = rows_of(result)
    if rows:
        v = view_of(result)
        parts.append(H.table(rows, v.columns, stderr=v.stderr, max_rows=CARD_ROWS))
    parts.append(static_figure(result))
    parts.append("</div>")
    return "\n".join(p for p in parts if p)
