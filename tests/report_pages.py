"""Helpers for the report tests: a small trained pair of MLPs and a reader of a page's numbers.

:class:`PageReader` collects what the page *states* (the exact ``data-*`` values of key
numbers, chart points and table cells, per section) with the standard library's HTML parser,
so the tests compare the page against the Results themselves.
"""

from __future__ import annotations

import collections
from html.parser import HTMLParser
from typing import Any


def small_mlps(seed_b: int = 1) -> tuple[Any, Any]:
    """Two zoo MLPs 64-24-10 trained for two epochs on digits (seconds)."""
    from inspect_kit.data import load_data
    from inspect_kit.zoo.train import train_zoo

    data = load_data("digits")
    out = []
    for seed in (0, seed_b):
        model, _ = train_zoo("mlp", data, model_kwargs={"sizes": [64, 24, 10]}, seed=seed,
                             epochs=2, progress=False)
        out.append(model)
    return out[0], out[1]


class PageReader(HTMLParser):
    """Per section key: ``numbers`` {metric: (value, stderr)} of the key-number cards,
    ``charts`` {chart key: [attrs of each point or cell]}, ``cells`` (data-value of table
    cells), ``images`` (count of inline figures), ``text`` (all text)."""

    def __init__(self, page: str):
        super().__init__()
        self.section = ""
        self.chart = ""
        self.sections: list[str] = []
        self.status: dict[str, str] = {}
        self.numbers: dict[str, dict[str, tuple[str, str | None]]] = collections.defaultdict(dict)
        self.charts: dict[str, dict[str, list[dict[str, str]]]] = collections.defaultdict(
            lambda: collections.defaultdict(list))
        self.cells: dict[str, list[str]] = collections.defaultdict(list)
        self.images: dict[str, int] = collections.defaultdict(int)
        self.text: dict[str, list[str]] = collections.defaultdict(list)
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.section = a.get("data-section", "")
            self.sections.append(self.section)
            self.status[self.section] = a.get("data-status", "")
        elif tag == "figure" and "data-chart" in a:
            self.chart = a["data-chart"]
        elif tag == "div" and a.get("class") == "kn":
            item = a.get("data-item", "")
            name = a["data-metric"] if item in ("", "model") else f"{item}:{a['data-metric']}"
            self.numbers[self.section][name] = (a["data-value"], a.get("data-stderr"))
        elif tag in ("circle", "rect") and "data-tip" in a and self.chart:
            self.charts[self.section][self.chart].append(a)
        elif tag == "td" and "data-value" in a:
            self.cells[self.section].append(a["data-value"])
        elif tag == "img" and a.get("class") == "figure":
            self.images[self.section] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.chart = ""
        elif tag == "section":
            self.section = ""

    def handle_data(self, data: str) -> None:
        if self.section:
            self.text[self.section].append(data)

    def section_text(self, key: str) -> str:
        return " ".join(self.text[key])
