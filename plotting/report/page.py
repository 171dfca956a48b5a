"""The page: one self-contained HTML file of sections (the report's and the gallery's).

:func:`render` takes :class:`Part` objects (a key, a title, the body's HTML, a status) and writes
the document: the style and the hover script inline, a header, a table of contents with each
part's status and time, the parts as ``<section data-section=KEY>``, the analyses that did not
run and why, and the Results as JSON (``<script type="application/json">``, read back by
:mod:`.read`). A Content-Security-Policy forbids every fetch: the page cannot load anything from
outside itself, online or not.

>>> page = render("demo", [Part("a", "Part A", "<p>hello</p>")])
>>> page.count('<section id="a" data-section="a"'), "http" in page.split("<body>")[1]
(1, False)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

from .html import esc
from .svg import SCRIPT

#: no fetch of any kind; inline style and script, images only as data: URLs
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")

STYLE = """
:root{--ink:#1d2330;--mute:#5f6b7a;--line:#e3e7ee;--ok:#2e7d32;--bad:#c62828;--skip:#8d6e00}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);
 background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}header .meta{color:#c5ccd8;font-size:13px}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
nav.toc{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;
 margin:12px 0}
nav.toc ol{margin:4px 0;padding-left:20px;columns:2}nav.toc li{margin:2px 0}
.badge{display:inline-block;border-radius:9px;padding:0 8px;font-size:11px;color:#fff;
 margin-left:6px;vertical-align:1px}
.badge.ok{background:var(--ok)}.badge.failed{background:var(--bad)}
.badge.skipped{background:var(--skip)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:6px 20px 16px;
 margin:16px 0;break-inside:avoid-page}
section.failed{border-color:var(--bad)}
section h2{font-size:18px;margin:10px 0 2px}section h2 .secs{font-size:12px;color:var(--mute);
 font-weight:400;margin-left:8px}
h3{font-size:15px;margin:14px 0 4px}h4{margin:10px 0 2px;font-size:13px}
.intro{color:var(--mute);margin:4px 0 8px}
.numbers{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 12px}
.kn{border:1px solid var(--line);border-radius:6px;padding:4px 10px;background:#fbfcfd}
.kn .k{color:var(--mute);font-size:12px;margin-right:8px}
.kn .v{font-weight:600;font-variant-numeric:tabular-nums}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
td,th{border-bottom:1px solid var(--line);padding:3px 9px;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{color:var(--mute);font-weight:500}table.kv td{white-space:normal}
details{margin:8px 0}summary{cursor:pointer;color:#28509b}
.note{color:var(--mute);font-size:12px}
.error{background:#fdecea;border:1px solid #f5c2bd;border-radius:6px;padding:8px 12px;
 color:#7f1d1d}
pre{background:#f3f4f6;padding:8px;border-radius:6px;overflow-x:auto;font-size:12px}
.formula{font-size:15px;background:#f3f6fb;border-radius:6px;padding:8px 12px;
 overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.ik-chart{position:relative;margin:8px 0;display:inline-block;max-width:100%!important}
figure.ik-chart svg{max-width:100%;height:auto;font:11px system-ui,sans-serif}
figure.ik-chart figcaption{font-size:12px;color:var(--mute)}
figure.ik-chart .hint{font-style:italic}
svg .plot{fill:#fff;stroke:#c9cfd8}svg .grid{stroke:#edf0f4}svg .tick{fill:#4a5463}
svg .label{fill:#1d2330;font-size:12px}
svg .line{fill:none;stroke:var(--c);stroke-width:1.6}
svg .pt{fill:var(--c);stroke:#fff;stroke-width:.8}svg .pt.hover-only{fill-opacity:0;stroke:none}
svg .pt.on{fill:var(--c);fill-opacity:1;stroke:#000;stroke-width:1.2}
svg .err{stroke:var(--c);stroke-width:1.2}
svg .cell.on{stroke:#000;stroke-width:1.5}svg .mark{stroke:#fff;stroke-width:2}
.ik-tip{position:absolute;background:rgba(29,35,48,.92);color:#fff;font-size:12px;
 padding:3px 8px;border-radius:4px;pointer-events:none;white-space:nowrap;z-index:5}
.static img.figure,.static svg.figure{max-width:100%;height:auto;display:block;margin:8px 0}
footer{color:var(--mute);font-size:12px;text-align:center;margin:24px 0}
@media print{body{background:#fff}header{background:#fff;color:#000}
 header .meta{color:#333}.ik-tip,.hint{display:none!important}
 section{border:none;padding:0}nav.toc{display:none}}
"""


@dataclasses.dataclass
class Part:
    """One section of a page: ``status`` is ``"ok"`` or ``"failed"``; ``seconds`` its time."""

    key: str
    title: str
    body: str
    status: str = "ok"
    seconds: float | None = None


def _secs(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f} s"


def _toc(parts: Sequence[Part], skipped: Sequence[tuple[str, str]]) -> str:
    items = [f'<li><a href="#{esc(p.key)}">{esc(p.title)}</a><span class="badge {esc(p.status)}">'
             f'{esc(p.status)}{(" · " + _secs(p.seconds)) if p.seconds is not None else ""}'
             "</span></li>" for p in parts]
    items += [f'<li>{esc(t)}<span class="badge skipped">not run</span></li>' for t, _ in skipped]
    return f'<nav class="toc"><strong>Contents</strong><ol>{"".join(items)}</ol></nav>'


def _section(p: Part) -> str:
    secs = f'<span class="secs">{_secs(p.seconds)}</span>' if p.seconds is not None else ""
    badge = '<span class="badge failed">failed</span>' if p.status == "failed" else ""
    return (f'<section id="{esc(p.key)}" data-section="{esc(p.key)}" data-status="{esc(p.status)}"'
            f' class="{esc(p.status)}"><h2>{esc(p.title)}{badge}{secs}</h2>\n{p.body}\n</section>')


def _skipped(skipped: Sequence[tuple[str, str]]) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li><strong>{esc(t)}</strong>: {esc(why)}</li>" for t, why in skipped)
    return (f'<section id="not-run" data-section="not-run"><h2>Not run</h2><ul>{items}</ul>'
            "</section>")


def _json_script(key: str, text: str) -> str:
    safe = text.replace("</", "<\\/")  # a JSON string may not end the script element
    return f'<script type="application/json" class="ik-result" data-section="{esc(key)}">{safe}</script>'


def render(title: str, parts: Sequence[Part], *, meta: str = "", intro: str = "",
           skipped: Sequence[tuple[str, str]] = (), data: Mapping[str, str] | None = None,
           footer: str = "") -> str:
    """The whole document (see the module docstring). ``meta``: HTML under the title;
    ``intro``: HTML before the contents; ``skipped``: (title, reason) of what did not run;
    ``data``: section key -> a Result's JSON text to embed."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    foot = footer or f"written by inspect-kit on {stamp}; this file needs nothing but itself"
    scripts = "".join(_json_script(k, v) for k, v in (data or {}).items())
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header><main>",
        intro, _toc(parts, skipped),
        *(_section(p) for p in parts), _skipped(skipped),
        f"<footer>{esc(foot)}</footer></main>", scripts,
        f"<script>{SCRIPT}</script></body></html>",
    ])
