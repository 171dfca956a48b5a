"""The model view: one place where a model meets data (see :mod:`.core`).

``make_view(model, data, **options)`` builds a :class:`ModelView` (or, under ``torchrun``, a
:class:`ShardedView` that splits the same work over the ranks). Hessian, landscape and LMC
analyses, and everything that needs "the loss as a function of the parameters", use it.
"""

from .batches import Batch, to_batches, unwrap
from .core import BUFFER_POLICIES, MODEL_MODES, Evaluation, ModelView, resolve_dtype
from .distributed import ShardedView, make_view
from .points import ENGINES

__all__ = ["BUFFER_POLICIES", "ENGINES", "MODEL_MODES", "Batch", "Evaluation", "ModelView",
           "ShardedView", "make_view", "resolve_dtype", "to_batches", "unwrap"]
