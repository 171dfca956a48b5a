"""Atomic file writing: nothing half-written is ever left behind.

Every file the kit writes goes through :func:`atomic_write` (one file) or :func:`write_all` (the
outputs of one command, all or nothing): the content is written to a temporary file in the
target's folder and renamed over the target only when writing succeeded. On error the temporary
file is removed and any previous file at the target is left as it was. New files get the mode a
plain ``open()`` would give them (``0o666`` minus the process umask; a replaced file keeps its
mode). A symlinked target is written through: the file it points to is replaced, the link
stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it to ``path`` on success.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "a.txt")) as fh:
    ...     _ = fh.write("hello")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = _through_link(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, _file_mode(target))  # mkstemp makes 0600; open() would honour the umask
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _through_link(path: str | os.PathLike) -> Path:
    """The file a symlink points to (written in place of the link), else ``path``."""
    p = Path(path)
    return p.resolve() if p.is_symlink() else p


def _file_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` would leave: an existing file keeps its own, a new one gets
    ``0o666 & ~umask``."""
    if target.is_file():
        return target.stat().st_mode & 0o7777
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_all(files: dict[str | os.PathLike, bytes]) -> None:
    """Write several files all or nothing: every content goes to a temporary file beside its
    target first; only when all are written are they renamed into place (on error none is, and
    the temporaries are removed).

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> write_all({os.path.join(d, "a.txt"): b"1", os.path.join(d, "b.txt"): b"2"})
    >>> sorted(os.listdir(d))
    ['a.txt', 'b.txt']
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            target = _through_link(path)
            folder = target.parent if str(target.parent) else Path(".")
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            staged.append((tmp, target))
            os.fchmod(fd, _file_mode(target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, target in staged:
            os.replace(tmp, target)
        staged = []
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, allow_nan=True)
    with atomic_write(path) as fh:
        fh.write(text + "\n")


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """Save a matplotlib figure atomically; the format follows the suffix (png, svg, pdf)."""
    target = Path(path)
    fmt = target.suffix.lstrip(".") or "png"
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    with atomic_write(target, "wb") as fh:
        fig.savefig(fh, format=fmt, **kwargs)
