"""HTML fragments: escaping, numbers with their uncertainty, tables, key numbers, provenance.

Every number written into a page keeps its exact value beside its text: table cells and key
numbers carry ``data-value`` (and ``data-stderr``) with the float's ``repr``, so a reader (or a
test) can check the page against the Result without parsing rounded text.

>>> fmt_uncertain(1234.5678, 12.3)
'1235 ± 12'
>>> fmt_uncertain(0.123456, 0.00123)
'0.1235 ± 0.0012'
>>> fmt(3e-7), fmt(2.5), fmt(12345678), fmt(True), fmt(None)
('3.000e-07', '2.5', '12,345,678', 'yes', '–')
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def esc(text: Any) -> str:
    """``text`` as HTML text (quotes escaped too, so it fits attributes)."""
    return html.escape(str(text), quote=True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def fmt(v: Any) -> str:
    """A short text for a value: 4 significant digits, scientific below 1e-3 and from 1e5,
    thousands separators for integers, yes/no for booleans, an en dash for None."""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return str(f)
        if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
            return f"{f:.3e}"
        return f"{f:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def fmt_uncertain(value: Any, stderr: Any) -> str:
    """``value ± stderr`` with the standard error to two significant digits and the value to
    the same decimal place (plain :func:`fmt` without a usable standard error)."""
    if not (_finite(value) and _finite(stderr)) or float(stderr) <= 0:
        return fmt(value)
    v, s = float(value), float(stderr)
    decimals = 1 - math.floor(math.log10(s))
    if decimals > 8 or abs(v) >= 1e7:
        return f"{v:.3e} ± {s:.1e}"
    decimals = max(decimals, 0)
    return f"{v:.{decimals}f} ± {s:.{decimals}f}"


def _data(value: Any) -> str:
    """The exact value for a ``data-*`` attribute (repr of the float; '' when not a number)."""
    if isinstance(value, (bool, np.bool_)):
        return "1.0" if value else "0.0"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value))
    return ""


def cell(value: Any, stderr: Any = None, tag: str = "td") -> str:
    """One table cell; numbers right-aligned with their exact value in ``data-value``."""
    num = _data(value)
    if not num:
        return f"<{tag}>{esc(fmt(value))}</{tag}>"
    se = f' data-stderr="{_data(stderr)}"' if _data(stderr) else ""
    return (f'<{tag} class="num" data-value="{num}"{se}>'
            f"{esc(fmt_uncertain(value, stderr))}</{tag}>")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
          stderr: Mapping[str, str] | None = None, max_rows: int | None = None,
          caption: str = "", cls: str = "") -> str:
    """An HTML table of ``rows`` (dicts): ``columns`` (default: every key, in first-seen
    order); ``stderr`` maps a column to the column holding its standard error (shown as
    ``value ± stderr``); past ``max_rows`` a note says how many rows were left out."""
    stderr = dict(stderr or {})
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    columns = [c for c in columns if c not in stderr.values()]
    shown = list(rows) if max_rows is None else list(rows)[:max_rows]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(cell(r.get(c), r.get(stderr[c]) if c in stderr else None)
                         for c in columns) + "</tr>" for r in shown)
    note = ""
    if len(shown) < len(rows):
        note = (f'<p class="note">first {len(shown)} of {len(rows)} rows; the whole table is in '
                "the Result (<code>wide_frame()</code>, <code>to_frame()</code>)</p>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table class="{esc(cls)}">{cap}<thead><tr>{head}</tr>'
            f"</thead><tbody>\n{body}\n</tbody></table></div>{note}")


def numbers(measurements: Iterable[Mapping[str, Any]], *, labels: Mapping[str, str] | None = None
            ) -> str:
    """Key numbers as a grid of small cards (``{item, metric, value, stderr}`` records of
    :meth:`inspect_kit.results.Result.headline`); each card keeps its exact value in
    ``data-value``/``data-stderr``."""
    labels = dict(labels or {})
    cards = []
    for m in measurements:
        name = labels.get(m["metric"], m["metric"].replace("_", " "))
        if m.get("item") not in (None, "model"):
            name = f"{m['item']}: {name}"
        value = m["value"]
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 \
                and m["metric"].startswith(("n_", "hvp", "edges", "tensors", "layers", "heads")):
            value = int(value)
        se = m.get("stderr")
        cards.append(
            f'<div class="kn" data-item="{esc(m.get("item", ""))}" data-metric="{esc(m["metric"])}"'
            f' data-value="{_data(m["value"])}"' + (f' data-stderr="{_data(se)}"' if _data(se) else "")
            + f'><span class="k">{esc(name)}</span>'
            f'<span class="v">{esc(fmt_uncertain(value, se))}</span></div>')
    return f'<div class="numbers">{"".join(cards)}</div>' if cards else ""


def details(summary: str, body: str, *, cls: str = "", open_: bool = False) -> str:
    """A collapsible block (opened for printing by the page's script)."""
    return (f'<details class="{esc(cls)}"{" open" if open_ else ""}><summary>{esc(summary)}'
            f"</summary>{body}</details>")


def keyvalue(pairs: Mapping[str, Any]) -> str:
    """A two-column table of names and values (dicts and lists as compact JSON)."""
    rows = []
    for k, v in pairs.items():
        text = json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else fmt(v)
        rows.append(f"<tr><th>{esc(k)}</th><td><code>{esc(text)}</code></td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>'


def provenance(prov: Mapping[str, Any]) -> str:
    """A Result's provenance (options, seed, seconds, versions, what the analysis resolved) as
    a collapsible block whose summary line names the seed and the time."""
    if not prov:
        return ""
    secs = prov.get("seconds")
    line = (f"options, seed {prov.get('seed')}, "
            + (f"{secs:.2f} s, " if isinstance(secs, (int, float)) else "")
            + "library versions")
    parts = [keyvalue({"analysis": prov.get("analysis"), "seed": prov.get("seed"),
                       "seconds": secs, "started": prov.get("started")})]
    if prov.get("options"):
        parts.append("<h4>options</h4>" + keyvalue(prov["options"]))
    rest = {k: v for k, v in prov.items()
            if k not in ("analysis", "seed", "seconds", "started", "options", "versions")}
    if rest:
        parts.append("<h4>resolved</h4>" + keyvalue(rest))
    if prov.get("versions"):
        parts.append("<h4>versions</h4>" + keyvalue(prov["versions"]))
    return details(line, "".join(parts), cls="prov")


def error(kind: str, message: str, trace: str = "") -> str:
    """A failed section's error box: the type and message, the traceback collapsed."""
    body = f'<div class="error"><strong>{esc(kind)}</strong>: {esc(message)}</div>'
    if trace:
        body += details("traceback", f"<pre>{esc(trace)}</pre>", cls="trace")
    return body
