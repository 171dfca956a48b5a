"""Linear mode connectivity: interpolation barriers, permutation alignment (weight and activation
matching), REPAIR and layer-wise LMC. Entry points :func:`lmc` and :func:`align`."""

from .api import align, lmc
from .result import AlignResult, LMCResult

__all__ = ["AlignResult", "LMCResult", "align", "lmc"]
