"""The gallery's working context: output folder, model cache, figure registry, README writer."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_kit.io import atomic_write, save_figure

CACHE_VERSION = 1


@dataclasses.dataclass
class Entry:
    """One figure in the README: file, title, two-line caption, key numbers."""

    section: str
    file: str
    title: str
    caption: str
    numbers: dict[str, str]
    result: Any = None


class Gallery:
    """Collects figures and numbers; caches trained models; reports progress on stderr."""

    def __init__(self, out: Path, *, quick: bool = False, progress: bool | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = self.out / ".cache"
        self.quick = quick
        self.progress = progress is not False
        self.entries: list[Entry] = []
        self.section = ""
        self.section_notes: dict[str, list[str]] = {}
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    # ---- progress -------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        if self.progress:
            print(f"[gallery {time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def begin_section(self, title: str, counter: str) -> None:
        self.section = title
        self.section_notes.setdefault(title, [])
        self.say(f"section {counter}: {title}")

    def step(self, what: str) -> Any:
        """``with g.step("MLP · Hessian"):`` announces and times one piece of work."""
        gallery = self

        class _Step:
            def __enter__(self) -> None:
                self.t = time.perf_counter()
                gallery.say(f"  {what} ...")

            def __exit__(self, *exc: Any) -> None:
                dt = time.perf_counter() - self.t
                gallery.seconds[what] = dt
                if exc[0] is None:
                    gallery.say(f"  {what} done in {dt:.1f}s")

        return _Step()

    # ---- models ---------------------------------------------------------------------------
    def model(self, key: str, train: Callable[[], tuple[Any, list[dict], dict]]) -> tuple[Any, Any]:
        """A trained model from the cache, or ``train()`` it and cache it.

        ``train`` returns ``(model, trajectory, extra)``; the cached checkpoint keeps all three.
        Returns ``(model, checkpoint)`` where ``checkpoint.trajectory`` and ``.meta["extra"]`` hold
        the rest.
        """
        from inspect_kit.checkpoints import load_checkpoint, load_model, save_checkpoint

        tag = "quick" if self.quick else "full"
        path = self.cache / f"{key}-{tag}-v{CACHE_VERSION}.pt"
        if not path.exists():
            with self.step(f"train {key}"):
                model, trajectory, extra = train()
                save_checkpoint(model, path, trajectory=trajectory, extra=extra)
        else:
            self.say(f"  {key}: cached checkpoint {path.name}")
        return load_model(path), load_checkpoint(path)

    # ---- data -----------------------------------------------------------------------------
    def data(self, name: str, *, n_train: int | None = None) -> Any:
        """A bundled data set; in quick mode (or with ``n_train``) a fixed, stratified-enough
        prefix of the training split (the splits are already shuffled) and 100 test samples."""
        import dataclasses as dc

        from inspect_kit.data import load_data

        bundle = load_data(name)
        n = n_train if n_train is not None else (300 if self.quick else None)
        if n is None or n >= len(bundle.x_train):
            return bundle
        n_test = 100 if self.quick else None
        return dc.replace(bundle, x_train=bundle.x_train[:n], y_train=bundle.y_train[:n],
                          x_test=bundle.x_test[:n_test] if bundle.x_test is not None else None,
                          y_test=bundle.y_test[:n_test] if bundle.y_test is not None else None)

    # ---- figures --------------------------------------------------------------------------
    def add(self, fig: Any, file: str, title: str, caption: str,
            numbers: dict[str, Any] | None = None, result: Any = None) -> None:
        """Save ``fig`` as ``<out>/<file>`` and register it for the README and the HTML page
        (``result``: the Result the figure shows; the page adds its charts and provenance)."""
        import matplotlib.pyplot as plt

        try:
            # --quick is the smoke test: fewer pixels, and no second draw for a tight bounding box
            save_figure(fig, self.out / file, **({"dpi": 60, "bbox_inches": None} if self.quick
                                                 else {"dpi": 120}))
        finally:
            plt.close(fig)
        self.entries.append(Entry(self.section, file, title, caption,
                                  {k: _fmt(v) for k, v in (numbers or {}).items()}, result))

    def note(self, text: str) -> None:
        """A sentence under the current section heading."""
        self.section_notes.setdefault(self.section, []).append(text)

    # ---- README ---------------------------------------------------------------------------
    def write_readme(self) -> Path:
        total = time.perf_counter() - self.t0
        lines = [
            "# inspect-kit gallery",
            "",
            "Rendered by `inspect-kit gallery`" + (" --quick (tiny budgets)" if self.quick else "")
            + f" in {total:.0f} s on this machine. Every model is trained here, seeded, on bundled"
            " data; every number below comes from the analysis that drew the figure beside it.",
            "",
        ]
        sections: list[str] = []
        for e in self.entries:
            if e.section not in sections:
                sections.append(e.section)
        for s in sections:
            lines += [f"## {s}", ""]
            lines += [n + "\n" for n in self.section_notes.get(s, [])]
            for e in (e for e in self.entries if e.section == s):
                lines += [f"### {e.title}", "", f"![{e.title}]({e.file})", "", e.caption, ""]
                if e.numbers:
                    lines += ["| quantity | value |", "|---|---|"]
                    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in e.numbers.items()]
                    lines.append("")
        readme = self.out / "README.md"
        with atomic_write(readme) as fh:
            fh.write("\n".join(lines).rstrip() + "\n")
        from .page import write_page

        page = write_page(self, sections, total)
        self.say(f"wrote {readme} and {page.name} ({len(self.entries)} figures) in {total:.0f}s")
        return readme


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)
