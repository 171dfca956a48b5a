"""Checkpoints: save and load weights safely; rebuild zoo models without naming the architecture.

Formats:

* **kit checkpoint** (``.pt``): a plain dict ``{"inspect_kit": meta, "inspect_kit_digest":
  digest, "state_dict": ..., "trajectory": [state_dict, ...]}`` that loads with
  ``torch.load(weights_only=True)``. ``meta`` records the zoo name and kwargs, so
  :func:`load_model` needs nothing else, and (format 2) a SHA-256 digest of the metadata and
  every tensor (:mod:`inspect_kit.integrity`), verified on every load: a damaged file raises
  :class:`CheckpointError` naming it. The digest is stored twice (inside ``meta`` and beside
  it), so one damaged key cannot make a kit file pass for an unverified plain state dict. Kit
  checkpoints written before digests existed (format 1) still load, unverified.
* **plain state dict** (``.pt``/``.pth``) or ``.safetensors`` file (a kit safetensors file keeps
  ``meta``, digest included, as JSON in its metadata): needs a model spec (``zoo:NAME``,
  ``package.module:factory`` or ``path/to/file.py:factory``) plus JSON kwargs.
* **pickled full model**: refused unless ``trust=True`` (unpickling runs arbitrary code).
* **pykan checkpoint** (``PATH_config.yml`` + ``PATH_state``): checked, then rebuilt with pykan
  (:mod:`inspect_kit.pykan_ckpt`).

Before a model is allocated, its declared architecture (zoo kwargs from the file or
``model_kwargs``) is built shape-only and compared with the tensors present
(:mod:`inspect_kit.preflight`); a mismatch or a model too large for memory is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import integrity, torchfile, zoo
from .errors import (
    CheckpointError,
    InspectKitError,
    ModelSpecError,
    OptionError,
    SizeLimitError,
    first_line,
)
from .io import atomic_write
from .model_spec import call_factory, model_from_spec, resolve_factory
from .preflight import build_checked

__all__ = ["Checkpoint", "load_checkpoint", "load_model", "model_from_spec", "save_checkpoint",
           "state_dict_of"]

FORMAT_VERSION = 2
KNOWN_VERSIONS = (1, 2)
META_KEY, DIGEST_KEY = "inspect_kit", "inspect_kit_digest"


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


def _contiguous(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # .clone() drops oversized shared storages (pykan writes coef as a view of a big workspace)
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _sections(sd: Mapping[str, torch.Tensor],
              trajectory: list[dict[str, torch.Tensor]]) -> dict[str, Mapping[str, torch.Tensor]]:
    return {"state_dict": sd, **{f"trajectory.{i}": s for i, s in enumerate(trajectory)}}


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    trajectory: list[dict[str, torch.Tensor]] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a kit checkpoint atomically (``.pt``, or ``.safetensors`` without trajectory).

    The zoo spec of a zoo model (``model.zoo_spec``) is recorded; ``extra`` must be JSON-safe.
    The metadata carries a digest of itself and every tensor, verified by :func:`load_checkpoint`.
    """
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "zoo": zoo.spec_of(model),
                            "extra": extra or {}}
    json.dumps(meta)  # fail early on non-JSON-safe kwargs
    sd = _contiguous(model.state_dict())
    traj = [_contiguous(s) for s in (trajectory or [])]
    target = Path(path)
    if target.suffix == ".safetensors" and traj:
        raise CheckpointError("a .safetensors checkpoint cannot hold a trajectory; use .pt")
    meta[integrity.KEY] = integrity.digest(meta, _sections(sd, traj))
    if target.suffix == ".safetensors":
        from safetensors.torch import save

        blob = save(sd, metadata={META_KEY: json.dumps(meta), DIGEST_KEY: meta[integrity.KEY]})
        with atomic_write(target, "wb") as fh:
            fh.write(blob)
        return
    with atomic_write(target, "wb") as fh:
        torch.save({META_KEY: meta, DIGEST_KEY: meta[integrity.KEY], "state_dict": sd,
                    "trajectory": traj}, fh)


def _pykan_prefix(path: Path) -> Path | None:
    for cand in (path, path.with_name(path.name.removesuffix("_state").removesuffix("_config.yml"))):
        if Path(f"{cand}_config.yml").is_file() and Path(f"{cand}_state").is_file():
            return cand
    if path.is_dir():
        states = sorted(path.glob("*_config.yml"))
        if states:
            return Path(str(states[-1]).removesuffix("_config.yml"))
    return None


def load_checkpoint(path: str | os.PathLike, *, trust: bool = False) -> Checkpoint:
    """Read a checkpoint file (any supported format) without building a model.

    Kit checkpoints are verified against their digest (format 2; format-1 files have none and
    load unverified). Every failure is a :class:`CheckpointError` naming the file.
    """
    p = Path(path)
    prefix = _pykan_prefix(p)
    if prefix is not None:
        from .pykan_ckpt import load_pykan

        module, sd = load_pykan(prefix)
        return Checkpoint(sd, {"pykan": str(prefix)}, [], str(prefix), module=module)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file (nor a pykan checkpoint)")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes); write the checkpoint again")
    if p.suffix == ".safetensors":
        return _read_safetensors(p)
    obj = torchfile.load(p, trust=trust)
    if isinstance(obj, nn.Module):
        return Checkpoint(obj.state_dict(), {"zoo": zoo.spec_of(obj)}, [], str(p), module=obj)
    if isinstance(obj, dict) and (META_KEY in obj or DIGEST_KEY in obj):
        meta = _check_meta(obj.get(META_KEY), obj.get(DIGEST_KEY), p)
        if "state_dict" not in obj:
            raise CheckpointError(f"{p} is a kit checkpoint without its state_dict entry; the "
                                  "file is damaged")
        sd = _tensors(obj["state_dict"], p, "state_dict")
        raw = obj.get("trajectory", [])
        if not isinstance(raw, list):
            raise CheckpointError(f"{p}: the trajectory is a {type(raw).__name__}, not a list")
        traj = [_tensors(s, p, f"trajectory snapshot {i}") for i, s in enumerate(raw)]
        _verify(meta, _sections(sd, traj), p)
        return Checkpoint(sd, meta, traj, str(p))
    sd = state_dict_of(obj)
    if sd is not None:
        return Checkpoint(_tensors(sd, p, "state dict"), {}, [], str(p))
    raise CheckpointError(
        f"{p} holds a {type(obj).__name__} without tensors, not a state dict or kit checkpoint; "
        "save model.state_dict() or use inspect_kit.checkpoints.save_checkpoint"
    )


def _read_safetensors(p: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            sd = {k: fh.get_tensor(k) for k in fh.keys()}
            md = fh.metadata() or {}
    except MemoryError as exc:
        raise SizeLimitError(f"reading {p} ran out of memory") from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read {p} as safetensors: {first_line(exc)}") from exc
    if META_KEY not in md and DIGEST_KEY not in md:
        return Checkpoint(sd, {}, [], str(p))
    try:
        raw = json.loads(md.get(META_KEY, "null"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{p}: its inspect_kit metadata is not valid JSON "
                              f"({first_line(exc, 80)}); the file is damaged") from exc
    meta = _check_meta(raw, md.get(DIGEST_KEY), p)
    _verify(meta, {"state_dict": sd}, p)
    return Checkpoint(sd, meta, [], str(p))


def _check_meta(meta: Any, outer: Any, p: Path) -> dict[str, Any]:
    """The kit metadata, type-checked (a clear CheckpointError instead of a crash later);
    ``outer`` is the digest stored beside it (format 2), which must agree with the inner one."""
    if meta is None:
        raise CheckpointError(f"{p} has a kit digest but no inspect_kit metadata; the file is "
                              "damaged")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: the inspect_kit metadata is a {type(meta).__name__}, not "
                              "a mapping; the file is damaged or was not written by inspect-kit")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{p}: the inspect_kit metadata has no valid format_version; the "
                              "file is damaged")
    if version not in KNOWN_VERSIONS:
        raise CheckpointError(f"{p} is checkpoint format {version}; this inspect-kit reads "
                              f"formats {KNOWN_VERSIONS}: upgrade inspect-kit")
    spec = meta.get("zoo")
    if spec is not None and not (
            isinstance(spec, dict) and isinstance(spec.get("name"), str)
            and isinstance(spec.get("kwargs", {}), dict)
            and all(isinstance(k, str) for k in spec.get("kwargs", {}))):
        raise CheckpointError(f"{p}: the zoo entry of its metadata is malformed (want "
                              '{"name": str, "kwargs": {...}}); the file is damaged')
    if not isinstance(meta.get("extra", {}), dict):
        raise CheckpointError(f"{p}: the extra entry of its metadata is not a mapping")
    if (version >= 2 or outer is not None) and (integrity.KEY not in meta
                                                 or meta[integrity.KEY] != outer):
        raise CheckpointError(f"{p} is damaged: its digest is missing or stored inconsistently; "
                              "restore the file from a copy or write it again")
    return meta


def _verify(meta: dict[str, Any], sections: dict[str, Mapping[str, torch.Tensor]],
            p: Path) -> None:
    if integrity.KEY not in meta:  # format 1: written before digests existed
        return
    try:
        integrity.verify(meta, sections, str(p))
    except InspectKitError:
        raise
    except Exception as exc:  # tensors the digest cannot read (sparse, ...): not ours
        raise CheckpointError(f"{p} is damaged: its tensors cannot be checked against the "
                              f"digest ({first_line(exc, 80)})") from exc


def _tensors(obj: Any, p: Path, what: str) -> dict[str, torch.Tensor]:
    """A ``{str: Tensor}`` mapping, or CheckpointError naming the file and the part."""
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{p}: its {what} is not a mapping of names to tensors; the file "
                              "is damaged or not a checkpoint")
    return dict(obj)


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


def load_model(
    path: str | os.PathLike | Checkpoint,
    *,
    model: str | nn.Module | None = None,
    model_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
) -> nn.Module:
    """Load a checkpoint (a path, or a :class:`Checkpoint` already read) into a model, in eval
    mode.

    ``model`` is needed only for foreign checkpoints: a spec string (see :func:`model_from_spec`)
    or an ``nn.Module`` to load into (a copy is made; the given module is not changed). Kit
    checkpoints rebuild their zoo model from the recorded spec; ``model_kwargs`` override the
    recorded kwargs. The declared architecture is compared with the tensors before the model is
    allocated (:func:`inspect_kit.preflight.build_checked`).
    """
    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path, trust=trust)
    src = ckpt.path
    if ckpt.module is not None and model is None:
        if model_kwargs:
            raise OptionError(f"{src} holds a whole model; --model-kwargs (model_kwargs) only "
                              "apply with --model or to a kit checkpoint's zoo model: drop them")
        return ckpt.module.eval()
    if isinstance(model, nn.Module):
        if model_kwargs:
            raise OptionError("model_kwargs apply to a model spec, not to a given nn.Module")
        from .preflight import check

        check(model, ckpt.state_dict, source=src, hint="pass the model this checkpoint was "
              "saved from", fits_memory=False)
        net = copy.deepcopy(model)
    else:
        if isinstance(model, str):
            spec, kw = model, dict(model_kwargs or {})
            hint = "check --model and --model-kwargs"
        elif ckpt.zoo_spec is not None:
            spec = f"zoo:{ckpt.zoo_spec['name']}"
            kw = {**ckpt.zoo_spec.get("kwargs", {}), **(model_kwargs or {})}
            hint = ("check --model-kwargs, which override the file's "
                    f"{json.dumps(ckpt.zoo_spec.get('kwargs', {}))[:120]}" if model_kwargs else
                    "the file's architecture metadata does not match its tensors: the file is "
                    "damaged or was edited")
        else:
            raise ModelSpecError(
                f"{src} is a plain state dict: say which model it belongs to with --model SPEC "
                "(zoo:NAME, package.module:factory or file.py:factory) and --model-kwargs JSON"
            )
        factory = resolve_factory(spec)
        net = build_checked(lambda: call_factory(factory, spec, kw), ckpt.state_dict, source=src,
                            hint=hint, fallback=not spec.startswith("zoo:"))
    try:
        net.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"{src} does not fit the model: {first_line(exc, 400)}; check "
                              "--model and --model-kwargs") from exc
    return net.eval()
