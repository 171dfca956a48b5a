"""The error family of inspect-kit.

Every error the kit raises on bad input is an :class:`InspectKitError` subclass whose message says
what was wrong and what to do about it. The command line turns them into a one-line message and
exit status 2, never a bare traceback.
"""

from __future__ import annotations

import re


class InspectKitError(Exception):
    """Base class: bad input or a request the kit cannot honour. The message names the fix."""


class DataError(InspectKitError, ValueError):
    """Data in an unusable form (wrong shapes, unknown data set name, empty, non-finite)."""


class CheckpointError(InspectKitError, OSError):
    """A checkpoint that cannot be read, is unsafe to load, or does not match the model."""


class ModelSpecError(InspectKitError, ValueError):
    """A model spec (``zoo:NAME``, ``pkg.mod:factory``, ``file.py:factory``) that cannot be built."""


class ArchitectureMismatchError(InspectKitError, ValueError):
    """Two models or state dicts that were expected to share an architecture do not."""


class UnsupportedModelError(InspectKitError, TypeError):
    """A module or model family the requested analysis cannot handle."""


class NonFiniteError(InspectKitError, ValueError):
    """NaN or infinite weights, data or losses where finite values are required."""


class SizeLimitError(InspectKitError, MemoryError):
    """A request that would exceed a documented size limit (e.g. a dense Hessian of a big model)."""


class OptionError(InspectKitError, ValueError):
    """An option with an invalid value; the message names the option and its allowed values."""


def first_line(exc: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of a message, without terminal escape codes, cut at ``limit``.

    >>> first_line(ValueError("\\x1b[1mbad\\x1b[0m value\\n  more detail"))
    'bad value'
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]
