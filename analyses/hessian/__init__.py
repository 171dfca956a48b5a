"""Hessian spectra of a model's loss: top/bottom eigenvalues (Lanczos), trace (Hutchinson,
Hutch++), spectral density (SLQ), per-block spectra, an exact dense mode and a PyHessian backend.

One estimator per module, all consuming :class:`~analyses.hessian.operator.HessianOperator`;
:func:`hessian` runs them together and returns a :class:`HessianResult`.
"""

from .api import hessian
from .exact import DenseHessian, dense_hessian
from .operator import HessianOperator, MatrixOperator
from .result import HessianResult

__all__ = ["DenseHessian", "HessianOperator", "HessianResult", "MatrixOperator", "dense_hessian",
           "hessian"]
