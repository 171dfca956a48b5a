"""Memory budgets: the ``max_memory`` option (bytes or a size such as ``"512MB"``, ``"2GB"``).

Analyses estimate what they will allocate before they allocate it and compare the estimate
with the budget (refusing with a message saying what fits, or switching to a bounded mode).

>>> parse_memory("2GB") == 2 * 2**30, parse_memory(1000), parse_memory("1.5k")
(True, 1000, 1536)
>>> gigabytes(3 * 2**29)
'1.5 GB'
"""

from __future__ import annotations

from .errors import OptionError

#: what ``max_memory=None`` means: no limit
UNLIMITED = 2**62

_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(value: int | float | str | None) -> int:
    """Bytes from a number or a size with a K/M/G/T suffix (powers of 1024, optional "B" or
    "iB"); ``None`` = no limit."""
    if value is None:
        return UNLIMITED
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        try:
            scale = _UNITS.get(text[-1:], 1)
            number = float(text[:-1] if text[-1:] in _UNITS else text)
            if number > 0:
                return int(number * scale)
        except ValueError:
            pass
    raise OptionError(f"max_memory must be a positive number of bytes or a size like '2GB', "
                      f"got {value!r}")


def gigabytes(n_bytes: float) -> str:
    """``n_bytes`` as a short "x.xx GB" string (powers of 1024)."""
    return f"{n_bytes / 2**30:.3g} GB"
