"""Symbolic regression of KAN edges: primitive library, batched fitting, selection, composition."""

from .from_data import discover
from .pipeline import SymbolicResult, symbolic

__all__ = ["SymbolicResult", "discover", "symbolic"]
