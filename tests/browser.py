"""Open a local page in headless Chromium and report what a person would see, for the tests.

The browser is driven over the Chrome DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in a NUL byte on file descriptors 3 and 4), so nothing listens on a port
and only the standard library is needed. :meth:`Chromium.open` loads a file and returns a
:class:`PageCheck`: every request the page made, every console error and uncaught exception,
the sections and the size of every figure, the hover readout of one chart point, the load time
and a full-page screenshot.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: the flags the machine guide asks for (headless, no sandbox as root, nothing phoning home)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]

#: page facts gathered by one script: sections, figures, the first chart's first point
PROBE = """JSON.stringify({
  sections: [...document.querySelectorAll('section[data-section]')].map(s => {
    const r = s.getBoundingClientRect();
    return {key: s.dataset.section, status: s.dataset.status || '',
            top: r.top + window.scrollY, height: r.height};
  }),
  figures: [...document.querySelectorAll('img.figure, svg.chart, svg.figure')].map(f => {
    const r = f.getBoundingClientRect();
    return {tag: f.tagName.toLowerCase(), width: r.width, height: r.height,
            natural: f.tagName === 'IMG' ? f.naturalWidth * f.naturalHeight : null,
            complete: f.tagName === 'IMG' ? f.complete : true,
            section: (f.closest('section') || {dataset: {}}).dataset.section || ''};
  }),
  title: document.title,
})"""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclasses.dataclass
class PageCheck:
    """What loading one page showed (see the module docstring)."""

    url: str
    requests: list[str]
    errors: list[str]
    sections: list[dict[str, Any]]
    figures: list[dict[str, Any]]
    hover: dict[str, Any] | None
    load_seconds: float
    screenshot: bytes


class Chromium:
    """A headless Chromium for the life of a ``with`` block (its own fresh profile)."""

    def __init__(self, binary: str, *, timeout: float = 60.0, width: int = 1280):
        self.binary, self.timeout, self.width = binary, timeout, width
        self._id = 0
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="ik-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # the child reads fd 3 and writes fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(os.path.join(self._profile, "stderr.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
             "about:blank"], preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.call("Browser.getVersion")
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # ---- protocol ------------------------------------------------------------------------
    def _recv(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer (events meanwhile go to ``events``)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._recv(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Wait for the event ``method`` (already received ones count)."""
        deadline = time.monotonic() + self.timeout
        for m in self.events:
            if m.get("method") == method:
                return m
        while True:
            m = self._recv(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m

    def evaluate(self, session: str, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    # ---- one page ------------------------------------------------------------------------
    def open(self, path: str | os.PathLike) -> PageCheck:
        """Load ``path`` (a local file) and gather a :class:`PageCheck`."""
        url = Path(path).resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=sid)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": 900,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False}, sid)
        self.events.clear()
        t0 = time.monotonic()
        self.call("Page.navigate", {"url": url}, sid)
        self.wait_for("Page.loadEventFired")
        load = time.monotonic() - t0
        facts = json.loads(self.evaluate(sid, PROBE))
        hover = self._hover(sid)
        metrics = self.call("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"],
                     "scale": 1}}, sid)
        events = [e for e in self.events if e.get("sessionId") == sid]
        return PageCheck(url=url, requests=_requests(events), errors=_errors(events),
                         sections=facts["sections"], figures=facts["figures"], hover=hover,
                         load_seconds=load, screenshot=base64.b64decode(shot["data"]))

    def _hover(self, sid: str) -> dict[str, Any] | None:
        """Move the mouse onto the first hover point of the first chart; the readout then."""
        box = self.evaluate(sid, """(() => {
            const el = document.querySelector('figure.ik-chart [data-tip]');
            if (!el) return null;
            el.scrollIntoView({block: 'center'});
            const r = el.getBoundingClientRect();
            return {x: r.left + r.width / 2, y: r.top + r.height / 2,
                    tip: el.getAttribute('data-tip')};
        })()""")
        if box is None:
            return None
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box["x"],
                                               "y": box["y"]}, sid)
        shown = self.evaluate(sid, """(() => {
            const t = document.querySelector('figure.ik-chart .ik-tip');
            return {hidden: t.hidden, text: t.textContent,
                    titles: document.querySelectorAll('figure.ik-chart [data-tip] > title').length};
        })()""")
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0}, sid)
        return {"expected": box["tip"], **shown}


def _requests(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events
            if e.get("method") == "Network.requestWillBeSent"]


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + json.dumps(p.get("args", []))[:500])
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", "")[:500])
    return out
