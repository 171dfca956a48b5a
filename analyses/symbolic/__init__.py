"""Symbolic regression of KAN edges: primitive library, batched fitting, selection, composition."""

from .pipeline import SymbolicResult, discover, symbolic

__all__ = ["SymbolicResult", "discover", "symbolic"]
