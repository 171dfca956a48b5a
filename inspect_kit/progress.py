"""Progress bars for long work (tqdm), silenced with ``progress=False`` or INSPECT_KIT_PROGRESS=0."""

from __future__ import annotations

import os
from typing import Any


def progress_enabled(progress: bool | None) -> bool:
    """Resolve a ``progress=`` argument: ``None`` means on unless INSPECT_KIT_PROGRESS=0."""
    if progress is None:
        return os.environ.get("INSPECT_KIT_PROGRESS", "1") not in ("0", "false", "no")
    return bool(progress)


def bar(total: int | None = None, desc: str = "", progress: bool | None = None, **kw: Any) -> Any:
    """A tqdm bar (disabled when progress is off). Use as a context manager; call ``update``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress_enabled(progress), leave=False,
                dynamic_ncols=True, **kw)
