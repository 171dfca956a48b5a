"""Digests that let a kit checkpoint prove it is the file that was written.

A kit checkpoint (format 2) stores ``meta["digest"] = "sha256:<hex>"``: SHA-256 over the
metadata itself (canonical JSON without the digest) and, for every tensor of every section
(``state_dict``, ``trajectory.0``, ...) in sorted order, its section, name, dtype, shape and raw
bytes. :func:`verify` recomputes it on load, so a flipped bit in the weights, the architecture
kwargs or the trajectory is reported instead of silently changing the numbers.

>>> import torch
>>> meta = {"format_version": 2, "zoo": None, "extra": {}}
>>> sd = {"w": torch.ones(2, 2)}
>>> meta["digest"] = digest(meta, {"state_dict": sd})
>>> verify(meta, {"state_dict": sd}, "m.pt")  # unchanged: silent
>>> sd["w"][0, 0] = 1.0000001
>>> try:
...     verify(meta, {"state_dict": sd}, "m.pt")
... except CheckpointError as exc:
...     print(str(exc)[:75])
m.pt is damaged: its content does not match the digest recorded when it was
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

from .errors import CheckpointError

KEY = "digest"
ALGORITHM = "sha256"


def _canonical(meta: Mapping[str, Any]) -> bytes:
    rest = {k: v for k, v in meta.items() if k != KEY}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=True,
                      default=repr).encode("utf-8")


def digest(meta: Mapping[str, Any], sections: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    """``"sha256:<hex>"`` of the metadata (without its digest) and every tensor of ``sections``."""
    h = hashlib.new(ALGORITHM)
    h.update(_canonical(meta))
    for section in sorted(sections):
        for name in sorted(sections[section]):
            t = sections[section][name].detach()
            head = json.dumps([section, name, str(t.dtype), list(t.shape)])
            h.update(len(head).to_bytes(8, "little") + head.encode("utf-8"))
            flat = t.cpu().contiguous().reshape(-1)
            if flat.numel():
                h.update(memoryview(flat.view(torch.uint8).numpy()))
    return f"{ALGORITHM}:{h.hexdigest()}"


def verify(meta: Mapping[str, Any], sections: Mapping[str, Mapping[str, torch.Tensor]],
           path: str) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when the recorded digest differs."""
    recorded = meta.get(KEY)
    if not isinstance(recorded, str) or not recorded.startswith(f"{ALGORITHM}:"):
        raise CheckpointError(f"{path} is damaged: its digest entry is missing or unreadable "
                              f"({str(recorded)[:40]!r}); restore it from a copy or write it again")
    if digest(meta, sections) != recorded:
        raise CheckpointError(f"{path} is damaged: its content does not match the digest recorded "
                              f"when it was written ({recorded[:15]}...); restore it from a copy "
                              "or write it again")
