"""Bounds on memory and time, checked before the work starts.

The kit refuses a request that cannot fit instead of starting it and failing (or running for
days) later: :func:`check_memory` compares an estimate in bytes with :func:`available_memory`,
:func:`check_time` compares an estimate in seconds with :data:`TIME_LIMIT` (one hour unless
``INSPECT_KIT_TIME_LIMIT`` says otherwise; ``force=True``, the CLI's ``--force``, lifts the time
bound, never the memory bound). Both raise :class:`~inspect_kit.errors.SizeLimitError` with a
message that says how large the request is, what is available and what to change.

>>> format_bytes(160_000_000_000)
'149 GiB'
>>> format_seconds(90_000)
'1.0 days'
>>> check_time(10.0, "5 products", "use fewer")  # within the bound: nothing happens
"""

from __future__ import annotations

import os
import resource

from .errors import SizeLimitError

#: seconds a request may be estimated to take before it is refused (``force=True`` lifts it)
TIME_LIMIT = float(os.environ.get("INSPECT_KIT_TIME_LIMIT", 3600.0))


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 100 else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_seconds(s: float) -> str:
    """A duration in the largest unit that keeps it >= 1 (s, min, h, days, years)."""
    for unit, size in (("years", 365 * 86400.0), ("days", 86400.0), ("h", 3600.0),
                       ("min", 60.0)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.1f} s"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory() -> int:
    """Bytes this process can still allocate: the system's available memory, lowered by the
    process's address-space and data limits (``ulimit -v``/``-d``) when they are set."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    for rlim, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(rlim)
        used = _status_kib(field)
        if soft != resource.RLIM_INFINITY and used is not None:
            avail = min(avail, max(0, soft - used * 1024))
    return int(avail)


def consistent(value: float) -> float:
    """Rank 0's ``value`` on every rank under ``torch.distributed`` (else ``value``): every rank
    must take the same decision, or the ones that go on wait forever for the one that stopped.
    Call it on all ranks at the same point."""
    from . import distributed

    return distributed.broadcast_object(value) if distributed.is_distributed() else value


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Raise :class:`SizeLimitError` when ``nbytes`` exceed the available memory.

    ``what`` names the request ("the Lanczos basis of 5 vectors x 10^9 parameters"), ``fix``
    says what to change. Under ``torch.distributed`` rank 0's figures decide for every rank.
    """
    nbytes, avail = consistent(nbytes), consistent(available_memory())
    if nbytes > avail:
        raise SizeLimitError(f"{what} needs about {format_bytes(nbytes)} of memory, more than the "
                             f"{format_bytes(avail)} available; {fix}")


def check_time(seconds: float, what: str, fix: str, *, force: bool = False) -> None:
    """Raise :class:`SizeLimitError` when an estimate exceeds :data:`TIME_LIMIT` (unless
    ``force``); under ``torch.distributed`` rank 0's estimate decides for every rank."""
    seconds = consistent(seconds)
    if not force and seconds > TIME_LIMIT:
        raise SizeLimitError(f"{what} would take about {format_seconds(seconds)} (the limit is "
                             f"{format_seconds(TIME_LIMIT)}); {fix}, or pass --force "
                             "(force=True) to run it anyway")
