"""A report page in a real headless browser (Chromium from the system's packages).

The page of a small model pair (every section that applies, one failed on purpose) is
opened through the DevTools protocol: it must load without a console error or an uncaught
exception, make no request but the file itself (figures are ``data:`` URLs written in the file),
show every section, give every figure a non-zero size, show a chart's hover readout, and leave
a screenshot (``INSPECT_KIT_SCREENSHOTS=DIR`` keeps a copy). ``.ci/run`` installs Chromium when
it is missing; the test skips only where no Chromium can be found.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .browser import Chromium, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: install it (apt-get install chromium; .ci/run "
                             "does) to run the browser test of the report page")


@pytest.fixture(scope="module")
def page(mlp_report, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(mlp_report.html, encoding="utf-8")
    return mlp_report.report, path


def test_page_in_chromium(page, tmp_path):
    rep, path = page
    with Chromium(CHROMIUM) as browser:
        check = browser.open(path)
    shot = tmp_path / "report.png"
    shot.write_bytes(check.screenshot)
    if os.environ.get("INSPECT_KIT_SCREENSHOTS"):
        os.makedirs(os.environ["INSPECT_KIT_SCREENSHOTS"], exist_ok=True)
        shutil.copy(shot, os.environ["INSPECT_KIT_SCREENSHOTS"])

    assert check.errors == []
    text = path.read_text(encoding="utf-8")
    assert check.requests[0] == check.url
    for url in check.requests[1:]:  # only the figures the file itself holds
        assert url.startswith("data:image/png;base64,") and url in text, url[:80]
    assert len(check.requests) - 1 == text.count('src="data:image/png;base64,')

    statuses = {s["key"]: s["status"] for s in check.sections}
    assert all(s["height"] > 0 for s in check.sections)
    expected = {"model": "ok", **{s.key: s.status for s in rep.sections}, "not-run": ""}
    assert statuses == expected and statuses["outliers"] == "failed"

    assert check.figures and all(f["width"] > 0 and f["height"] > 0 for f in check.figures)
    assert all(f["complete"] and f["natural"] > 0 for f in check.figures if f["tag"] == "img")
    with_figures = {f["section"] for f in check.figures}
    assert with_figures == {s.key for s in rep.sections if s.status == "ok"}

    hover = check.hover
    assert hover is not None and not hover["hidden"] and hover["text"] == hover["expected"]
    assert hover["titles"] == 0  # the script took over the static tooltips

    assert check.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(check.screenshot) > 10_000
