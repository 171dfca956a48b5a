"""Symbolic regression of KAN edges: primitive library, batched fitting, selection, composition."""
