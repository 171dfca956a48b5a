"""Symbolic regression of KAN edges: primitive library, batched fitting, selection, composition.

Entry points :func:`analyses.symbolic.api.symbolic` (a trained KAN -> formula) and
:func:`analyses.symbolic.api.discover` (data -> trained KAN -> formula).
"""

from .api import discover, symbolic
from .result import SymbolicResult

__all__ = ["SymbolicResult", "discover", "symbolic"]
