"""Memory budgets: what a request may allocate, decided before the work starts.

``memory=`` options accept bytes (an int) or a string such as ``"8GB"``, ``"512MiB"``; None
means half of the memory this process can still allocate (``MemAvailable`` in
``/proc/meminfo``, lowered by ``ulimit -v``/``-d``: :func:`inspect_kit.limits.available_memory`).

>>> parse_bytes("1.5GB"), parse_bytes("512MiB"), parse_bytes(1024)
(1500000000, 536870912, 1024)
>>> human(3 * 2**30)
'3.2 GB'
"""

from __future__ import annotations

import re

from .errors import OptionError

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: int | float | str) -> int:
    """Bytes from an int or a string with a unit (``"8GB"``, ``"800 MiB"``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise OptionError(f"memory must be positive, got {value!r}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if m is None or m.group(2).lower() not in _UNITS:
        raise OptionError(f"memory must be bytes or a size such as '8GB' or '512MiB', got "
                          f"{value!r}")
    out = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if out <= 0:
        raise OptionError(f"memory must be positive, got {value!r}")
    return out


def available_bytes() -> int:
    """Memory this process can still allocate: the system's available memory (MemAvailable),
    lowered by ``ulimit -v``/``-d`` (:func:`inspect_kit.limits.available_memory`)."""
    from .limits import available_memory

    return available_memory()


def budget(memory: int | float | str | None) -> int:
    """The byte budget of a ``memory=`` option (None: half of the available memory)."""
    return available_bytes() // 2 if memory is None else parse_bytes(memory)


def human(n: float) -> str:
    """A byte count for messages (decimal units)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover
