"""Loss landscapes (Li et al. 2018): directions, grid evaluation, optimiser paths.

Entry point: :func:`analyses.landscape.api.landscape` returning a
:class:`analyses.landscape.result.LandscapeResult`.
"""

from .api import landscape
from .result import LandscapeResult

__all__ = ["LandscapeResult", "landscape"]
