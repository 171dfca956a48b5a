"""Checkpoints: save and load weights safely; rebuild zoo models without naming the architecture.

Formats:

* **kit checkpoint** (``.pt``): a plain dict ``{"inspect_kit": meta, "state_dict": ...,
  "trajectory": [state_dict, ...]}`` that loads with ``torch.load(weights_only=True)``. ``meta``
  records the zoo name and kwargs, so :func:`load_model` needs nothing else.
* **plain state dict** (``.pt``/``.pth``) or ``.safetensors`` file (a kit safetensors file keeps
  ``meta`` as JSON in its metadata): needs a model spec (``zoo:NAME``, ``package.module:factory``
  or ``path/to/file.py:factory``) plus JSON kwargs.
* **pickled full model**: refused unless ``trust=True`` (unpickling runs arbitrary code).
* **pykan checkpoint** (``PATH_config.yml`` + ``PATH_state``): loaded with pykan when installed.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import zoo
from .errors import CheckpointError, ModelSpecError
from .io import atomic_write

FORMAT_VERSION = 1


@dataclasses.dataclass
class Checkpoint:
    """What a checkpoint file holds: tensors, the kit metadata (if any), a trajectory (if any)."""

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]
    trajectory: list[dict[str, torch.Tensor]]
    path: str
    module: nn.Module | None = None  # set only for trusted pickled models / pykan folders

    @property
    def zoo_spec(self) -> dict[str, Any] | None:
        return self.meta.get("zoo")


def _contiguous(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # .clone() drops oversized shared storages (pykan writes coef as a view of a big workspace)
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    trajectory: list[dict[str, torch.Tensor]] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a kit checkpoint atomically (``.pt``, or ``.safetensors`` without trajectory).

    The zoo spec of a zoo model (``model.zoo_spec``) is recorded; ``extra`` must be JSON-safe.
    """
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "zoo": zoo.spec_of(model),
                            "extra": extra or {}}
    json.dumps(meta)  # fail early on non-JSON-safe kwargs
    sd = _contiguous(model.state_dict())
    target = Path(path)
    if target.suffix == ".safetensors":
        from safetensors.torch import save

        if trajectory:
            raise CheckpointError("a .safetensors checkpoint cannot hold a trajectory; use .pt")
        blob = save(sd, metadata={"inspect_kit": json.dumps(meta)})
        with atomic_write(target, "wb") as fh:
            fh.write(blob)
        return
    payload = {"inspect_kit": meta, "state_dict": sd,
               "trajectory": [_contiguous(s) for s in (trajectory or [])]}
    with atomic_write(target, "wb") as fh:
        torch.save(payload, fh)


def _pykan_prefix(path: Path) -> Path | None:
    for cand in (path, path.with_name(path.name.removesuffix("_state").removesuffix("_config.yml"))):
        if Path(f"{cand}_config.yml").exists() and Path(f"{cand}_state").exists():
            return cand
    if path.is_dir():
        states = sorted(path.glob("*_config.yml"))
        if states:
            return Path(str(states[-1]).removesuffix("_config.yml"))
    return None


def load_checkpoint(path: str | os.PathLike, *, trust: bool = False) -> Checkpoint:
    """Read a checkpoint file (any supported format) without building a model."""
    p = Path(path)
    prefix = _pykan_prefix(p)
    if prefix is not None:
        return _load_pykan(prefix)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file (nor a pykan checkpoint)")
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as fh:
                sd = {k: fh.get_tensor(k) for k in fh.keys()}
                md = fh.metadata() or {}
        except Exception as exc:
            raise CheckpointError(f"cannot read {p} as safetensors: {exc}") from exc
        meta = json.loads(md["inspect_kit"]) if "inspect_kit" in md else {}
        return Checkpoint(sd, meta, [], str(p))
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust:
            raise CheckpointError(
                f"{p} cannot be loaded safely (weights_only=True): it holds pickled objects or is "
                f"not a torch file ({str(exc).splitlines()[0][:160]}). If it is a pickled model from "
                "a source you trust, pass trust=True (CLI: --trust); otherwise save a state_dict."
            ) from exc
        try:
            obj = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise CheckpointError(f"cannot read checkpoint {p}: {exc2}") from exc2
    if isinstance(obj, nn.Module):
        return Checkpoint(obj.state_dict(), {"zoo": zoo.spec_of(obj)}, [], str(p), module=obj)
    if isinstance(obj, dict) and "inspect_kit" in obj and "state_dict" in obj:
        return Checkpoint(obj["state_dict"], obj["inspect_kit"], list(obj.get("trajectory", [])),
                          str(p))
    sd = state_dict_of(obj)
    if sd is not None:
        return Checkpoint(sd, {}, [], str(p))
    raise CheckpointError(
        f"{p} holds a {type(obj).__name__} without tensors, not a state dict or kit checkpoint; "
        "save model.state_dict() or use inspect_kit.checkpoints.save_checkpoint"
    )


def state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensor mapping inside a loaded object: a plain state dict, or one under a usual key
    (``state_dict``, ``model_state_dict``, ``model``, ``params``, ``weights``), or the tensors
    of a mixed dict (training checkpoints with optimiser state); None when there is none."""
    if not isinstance(obj, Mapping):
        return None
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    for key in ("state_dict", "model_state_dict", "model", "params", "weights"):
        if isinstance(obj.get(key), Mapping):
            found = state_dict_of(obj[key])
            if found is not None:
                return found
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return tensors or None


def _load_pykan(prefix: Path) -> Checkpoint:
    try:
        from kan import MultKAN
    except ImportError as exc:
        raise CheckpointError(
            f"{prefix} is a pykan checkpoint; install pykan (pip install 'inspect-kit[kan]')"
        ) from exc
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        model = MultKAN.loadckpt(str(prefix))
    model.auto_save = False
    return Checkpoint(model.state_dict(), {"pykan": str(prefix)}, [], str(prefix), module=model)


def model_from_spec(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build a model from ``zoo:NAME``, ``package.module:factory`` or ``path/file.py:factory``."""
    kwargs = dict(kwargs or {})
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelSpecError(
            f"model spec {spec!r} must be 'zoo:NAME', 'package.module:factory' or "
            "'path/to/file.py:factory'"
        )
    head, _, attr = spec.rpartition(":")
    if head == "zoo":
        return zoo.build(attr, **kwargs)
    if head.endswith(".py"):
        file = Path(head)
        if not file.exists():
            raise ModelSpecError(f"model file {file} does not exist")
        mod_spec = importlib.util.spec_from_file_location(f"_inspect_kit_user_{file.stem}", file)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelSpecError(f"importing {file} failed: {exc}") from exc
    else:
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise ModelSpecError(f"cannot import module {head!r} of model spec {spec!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelSpecError(f"{head} has no callable {attr!r} (model spec {spec!r})")
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"calling {spec} with kwargs {kwargs} failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{spec} returned a {type(model).__name__}, not an nn.Module")
    return model


def load_model(
    path: str | os.PathLike,
    *,
    model: str | nn.Module | None = None,
    model_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
) -> nn.Module:
    """Load a checkpoint into a model, in eval mode.

    ``model`` is needed only for foreign checkpoints: a spec string (see :func:`model_from_spec`)
    or an ``nn.Module`` to load into (a copy is made; the given module is not changed). Kit
    checkpoints rebuild their zoo model from the recorded spec.
    """
    ckpt = load_checkpoint(path, trust=trust)
    if ckpt.module is not None and model is None:
        return ckpt.module.eval()
    if isinstance(model, nn.Module):
        import copy

        net = copy.deepcopy(model)
    elif isinstance(model, str):
        net = model_from_spec(model, model_kwargs)
    elif ckpt.zoo_spec is not None:
        kw = dict(ckpt.zoo_spec.get("kwargs", {}))
        kw.update(model_kwargs or {})
        net = zoo.build(ckpt.zoo_spec["name"], **kw)
    else:
        raise ModelSpecError(
            f"{path} is a plain state dict: say which model it belongs to with --model SPEC "
            "(zoo:NAME, package.module:factory or file.py:factory) and --model-kwargs JSON"
        )
    try:
        net.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        first = str(exc).split("\n")[0:3]
        raise CheckpointError(
            f"{path} does not fit the model: {' '.join(s.strip() for s in first)[:400]}; check "
            "--model and --model-kwargs"
        ) from exc
    return net.eval()
