"""Layer ESD metrics (heavy-tailed alpha and friends) for every weight tensor, KANs included.

Entry point: :func:`analyses.esd.api.esd` (re-exported here as ``esd``). Modules: ``matrices``
(which matrices), ``spectra`` (their eigenvalues), ``powerlaw`` (alpha fit), ``metrics`` (norms,
MP fit, SETOL detX), ``result`` (ESDResult), ``ww_backend`` (WeightWatcher side by side),
``quality`` (alpha vs test accuracy across checkpoints).
"""

from .api import esd
from .result import ESDResult

__all__ = ["esd", "ESDResult"]
