"""Attention maps: rollout, per-head statistics and the ``attention`` analysis.

``from analyses.attention.api import attention`` (capture lives in :mod:`inspect_kit.attention`).
"""

from .api import attention
from .result import AttentionResult

__all__ = ["AttentionResult", "attention"]
