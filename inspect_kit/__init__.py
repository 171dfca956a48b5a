"""inspect-kit: what touches a model (hooks, adapters, parameters, data, checkpoints, zoo).

The analyses live in the ``analyses`` package and the figures in ``plotting``; this package
never imports them.
"""

from .errors import (
    ArchitectureMismatchError,
    CheckpointError,
    DataError,
    InspectKitError,
    ModelSpecError,
    NonFiniteError,
    OptionError,
    SizeLimitError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "DataError",
    "InspectKitError",
    "ModelSpecError",
    "NonFiniteError",
    "OptionError",
    "SizeLimitError",
    "UnsupportedModelError",
    "__version__",
]
