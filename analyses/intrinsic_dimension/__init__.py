"""Intrinsic dimension of objective landscapes (Li et al. 2018): random-subspace training with
dense or Fastfood projections and the d_int90 search with both baseline definitions.
:func:`intrinsic_dimension` returns an :class:`IntrinsicDimensionResult`.
"""

from .api import intrinsic_dimension
from .result import IntrinsicDimensionResult

__all__ = ["IntrinsicDimensionResult", "intrinsic_dimension"]
