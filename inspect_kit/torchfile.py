"""Reading ``torch.save`` files without letting the file choose how much memory is allocated.

PyTorch writes zip archives (since 1.6): every record's size is bounded by the file, and the
pickle inside is read from memory. Two other inputs make ``torch.load`` allocate what the file
*declares* before reading it: the legacy format (storages are allocated at the size the pickle
states) and arbitrary bytes (a pickle opcode may ask to read gigabytes). :func:`load` therefore
sniffs the format first: zip archives load as usual (``weights_only=True`` unless ``trust``),
legacy files load only with ``trust=True``, anything else is refused. Every failure is a
:class:`~inspect_kit.errors.CheckpointError` naming the file, on one line.

>>> import io, tempfile, os, torch
>>> path = os.path.join(tempfile.mkdtemp(), "t.pt")
>>> torch.save({"w": torch.ones(2)}, path)
>>> load(path)["w"].tolist()
[1.0, 1.0]
>>> open(path, "wb").write(b"\\x80\\x02" + b"x" * 30)
32
>>> try:
...     load(path)
... except CheckpointError as exc:
...     print(str(exc)[-40:])
not a PyTorch checkpoint (zip or legacy)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, SizeLimitError, first_line

ZIP_MAGIC = b"PK\x03\x04"
#: pickle protocol 2 + LONG1 of torch's legacy MAGIC_NUMBER 0x1950a86a20f9469cfc6c
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


def file_format(path: str | os.PathLike) -> str:
    """``"zip"``, ``"legacy"`` or ``"unknown"`` from the first bytes of the file."""
    with open(path, "rb") as fh:
        head = fh.read(len(LEGACY_MAGIC))
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == LEGACY_MAGIC:
        return "legacy"
    return "unknown"


def load(path: str | os.PathLike, *, trust: bool = False) -> Any:
    """``torch.load`` on CPU, safely (see the module docstring)."""
    p = Path(path)
    kind = file_format(p)
    if kind == "unknown":
        raise CheckpointError(f"cannot read {p}: it is not a PyTorch checkpoint (zip or legacy)")
    if kind == "legacy" and not trust:
        raise CheckpointError(
            f"{p} is in PyTorch's legacy (pre-1.6) format, whose loader allocates whatever sizes "
            "the file declares; re-save it with a current PyTorch, or pass --trust (trust=True) "
            "if it comes from a source you trust")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except MemoryError as exc:
        raise SizeLimitError(f"reading {p} ran out of memory") from exc
    except Exception as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"cannot read {p}: not a torch checkpoint, or damaged "
                                  f"({first_line(exc)})") from exc
        if not trust:
            found = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = f" (it refers to {found.group(1)})" if found else ""
            raise CheckpointError(
                f"{p} holds pickled Python objects{what}, which safe loading (weights_only=True) "
                "refuses because unpickling runs code from the file; if it is a model from a "
                "source you trust pass --trust (trust=True), otherwise save model.state_dict()"
            ) from exc
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except MemoryError as exc:
        raise SizeLimitError(f"reading {p} ran out of memory") from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {p}: {first_line(exc)}") from exc
