"""Resume files for a landscape grid whose points are split over ``torch.distributed`` ranks.

The points are split by the model view (:class:`inspect_kit.view.ShardedView`: each rank
evaluates a contiguous share of the points still to do and one ``all_gather`` merges them).
Resume: on several ranks each rank saves its progress to ``<resume>.rank<r>`` (never two
writers on one file); loading merges the main file and every ``<resume>.rank*`` sibling with the
same fingerprint, so an interrupted job resumes with any number of ranks without recomputing a
finished point. At the end rank 0 writes the merged values to ``<resume>`` and the rank files
are removed. On one process this is the identity and ``<resume>`` is used directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_kit import distributed as D

Loader = Callable[[Path, str, int], tuple[list[float], list[float]]]


class GridShard:
    """This rank's view of a grid of ``n`` points (see the module docstring)."""

    def __init__(self, resume: Path | None) -> None:
        self.resume = resume
        self.distributed = D.is_distributed()
        self.rank, self.world = D.rank(), D.world_size()
        self.n_todo = 0

    @property
    def path(self) -> Path | None:
        """Where this rank saves partial results."""
        if self.resume is None or not self.distributed:
            return self.resume
        return self.resume.with_name(f"{self.resume.name}.rank{self.rank}")

    def siblings(self) -> list[Path]:
        if self.resume is None:
            return []
        return sorted(self.resume.parent.glob(f"{self.resume.name}.rank*"))

    def load(self, loader: Loader, fp: str, n: int) -> tuple[list[float], list[float]]:
        """Values saved so far: ``<resume>`` merged with every rank file (NaN = not done).

        On several ranks rank 0 reads and broadcasts (one collective): every rank must split
        the same list of points, and a fast rank may already be writing its rank file.
        """
        if not self.distributed:
            return self._read(loader, fp, n)
        got: Any = None
        if self.rank == 0:
            try:
                got = self._read(loader, fp, n)
            except Exception as exc:  # every rank raises it, none waits forever
                got = exc
        got = D.broadcast_object(got)
        if isinstance(got, Exception):
            raise got
        return got

    def _read(self, loader: Loader, fp: str, n: int) -> tuple[list[float], list[float]]:
        loss, acc = loader(self.resume, fp, n)
        for p in self.siblings():
            lo, ac = loader(p, fp, n)
            for i in range(n):
                if math.isnan(loss[i]) and not math.isnan(lo[i]):
                    loss[i], acc[i] = lo[i], ac[i]
        return loss, acc

    def finish(self, save_to: Callable[[Path], None]) -> None:
        """Rank 0 writes the merged file; rank files are dropped once it exists."""
        if self.resume is None:
            return
        if not self.distributed:  # <resume> was just written with every value: drop leftovers
            for p in self.siblings():
                p.unlink(missing_ok=True)
            return
        if self.rank == 0:
            save_to(self.resume)
        D.barrier()
        mine = self.path
        if mine is not None and mine.exists():
            mine.unlink()
