"""Check a declared architecture against the tensors of a checkpoint before allocating it.

A checkpoint's metadata (zoo kwargs) or the user's ``--model-kwargs`` declare an architecture;
the file holds tensors. :func:`build_checked` builds the model first on PyTorch's ``meta``
device, where parameters have shapes but no storage, and compares: the declared size must fit in
memory (:func:`inspect_kit.limits.available_memory`) and every tensor must be present with its
shape. Only then is the real model built. So a 100 KB file declaring
``sizes=[64, 200000, 200000, 10]`` (40 billion parameters) is refused with its size in the
message, never allocated. While the shape-only model is built, the number of modules, parameters
and buffers it registers and of torch operations it runs are bounded by what the file can hold
(``depth=10**9`` or a spline order ``k=10**9`` is refused after a few thousand steps, not built
for hours).

>>> import torch
>>> from torch import nn
>>> sd = {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)}
>>> build_checked(lambda: nn.Linear(2, 3), sd, source="m.pt", hint="check --model-kwargs")
Linear(in_features=2, out_features=3, bias=True)
>>> try:
...     build_checked(lambda: nn.Linear(2, 300000), sd, source="m.pt", hint="check the kwargs")
... except CheckpointError as exc:
...     print(str(exc)[:95])
m.pt does not fit the declared architecture (900,000 parameters, 3.43 MiB): weight is (3, 2) in
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.overrides import TorchFunctionMode

from .errors import CheckpointError, InspectKitError, ModelSpecError, SizeLimitError
from .limits import available_memory, format_bytes

#: registrations (modules + parameters + buffers) allowed per tensor of the file, plus a base
REGISTRATIONS_PER_TENSOR, REGISTRATIONS_BASE = 64, 1024
#: torch operations allowed while building shape-only (zoo models need ~6-25 per tensor)
OPS_PER_TENSOR, OPS_BASE = 200, 10_000


class _TooManyRegistrations(Exception):
    pass


class _BoundedOps(TorchFunctionMode):
    """Counts torch calls; raises :class:`_TooManyRegistrations` past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.count = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        if self.count > self.limit:
            raise _TooManyRegistrations
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _bounded_registrations(limit: int) -> Iterator[None]:
    """Raise inside the block once more than ``limit`` modules/parameters/buffers registered."""
    count = [0]

    def hook(*_: object) -> None:
        count[0] += 1
        if count[0] > limit:
            raise _TooManyRegistrations

    handles = [_module.register_module_module_registration_hook(hook),
               _module.register_module_parameter_registration_hook(hook),
               _module.register_module_buffer_registration_hook(hook)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def meta_build(build: Callable[[], nn.Module], *, n_tensors: int, source: str,
               hint: str, fallback: bool = True) -> nn.Module | None:
    """``build()`` on the meta device (no storage), or None when the factory cannot run there
    and ``fallback`` allows checking after a real build (user factories; never the zoo).

    Raises :class:`CheckpointError` when the factory registers far more modules and tensors, or
    runs far more torch operations, than a file with ``n_tensors`` tensors can describe; kit
    errors of the factory pass through.
    """
    limit = REGISTRATIONS_BASE + REGISTRATIONS_PER_TENSOR * n_tensors
    ops = OPS_BASE + OPS_PER_TENSOR * n_tensors
    try:
        with _bounded_registrations(limit), torch.device("meta"), _BoundedOps(ops):
            model = build()
    except _TooManyRegistrations:
        raise CheckpointError(
            f"{source} holds {n_tensors} tensors but building the declared architecture takes "
            f"more than {limit:,} modules and tensors or {ops:,} operations; {hint}") from None
    except InspectKitError:
        raise
    except Exception as exc:  # a factory that needs real tensors: checked after the real build
        if fallback:
            return None
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"the architecture declared for {source} cannot be built "
                              f"({type(exc).__name__}: {first}); {hint}") from exc
    return model if isinstance(model, nn.Module) else None


def declared_size(model: nn.Module) -> tuple[int, int]:
    """``(values, bytes)`` of a model's parameters and buffers (also on the meta device)."""
    tensors = [*model.parameters(), *model.buffers()]
    return (sum(t.numel() for t in tensors),
            sum(t.numel() * t.element_size() for t in tensors))


def shape_problems(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Every difference between the model's state-dict shapes and the file's tensors."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    out = [f"{k} is {have[k]} in the file but {want[k]} in the model"
           for k in want if k in have and have[k] != want[k]]
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    if missing:
        out.append(f"missing from the file: {', '.join(missing[:5])}"
                   + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if extra:
        out.append(f"not in the model: {', '.join(extra[:5])}"
                   + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))
    return out


def check(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str,
          hint: str, fits_memory: bool = True) -> None:
    """Refuse a model whose tensors differ from ``state_dict`` or (``fits_memory``) whose
    declared size exceeds the available memory; messages state the declared size."""
    values, nbytes = declared_size(model)
    size = f"{values:,} parameters, {format_bytes(nbytes)}"
    problems = shape_problems(model, state_dict)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more differences"
                                           if len(problems) > 3 else "")
        raise CheckpointError(f"{source} does not fit the declared architecture ({size}): "
                              f"{shown}; {hint}")
    avail = available_memory()
    if fits_memory and nbytes > avail:
        raise SizeLimitError(f"the model of {source} has {size}, more than the "
                             f"{format_bytes(avail)} of memory available")


def build_checked(build: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor], *,
                  source: str, hint: str, fallback: bool = True) -> nn.Module:
    """Build the model only after its shape-only twin matched ``state_dict`` and fits memory
    (see the module docstring); the real model's shapes are checked again before returning.
    ``fallback=False`` refuses a factory that cannot build shape-only (zoo models always can)."""
    ghost = meta_build(build, n_tensors=len(state_dict), source=source, hint=hint,
                       fallback=fallback)
    if ghost is not None:
        check(ghost, state_dict, source=source, hint=hint)
        del ghost
    try:
        model = build()
    except InspectKitError:
        raise
    except MemoryError as exc:
        raise SizeLimitError(f"building the model of {source} ran out of memory; {hint}") from exc
    except Exception as exc:  # the declared kwargs (file metadata or the user's) are input
        if "can't allocate memory" in str(exc):
            raise SizeLimitError(f"building the model of {source} ran out of memory; "
                                 f"{hint}") from exc
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ModelSpecError(f"building the model of {source} failed ({type(exc).__name__}: "
                             f"{first}); {hint}") from exc
    check(model, state_dict, source=source, hint=hint, fits_memory=False)
    return model
