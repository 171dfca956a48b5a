"""Empirical neural tangent kernel: the kernel in three forms by two methods chosen by a cost
model, its top eigenvalues (matrix-free when it does not fit), its change between two models
and the Gauss-Newton consistency check. :func:`ntk` runs them and returns an
:class:`NTKResult`.
"""

from .api import ntk
from .result import NTKResult

__all__ = ["NTKResult", "ntk"]
