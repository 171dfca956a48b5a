"""Where a modular-addition model keeps its embedding, neurons and unembedding.

The zoo model (:class:`inspect_kit.zoo.modadd.ModAddNet`) lists them in its attribute
``fourier_points`` (``{"embedding": "embed", "neurons": "act", "unembedding": "unembed",
"position": ...}``); any other model names them through the analysis options:

* ``embedding``: a parameter name (``"embed.W_E"``) or a module name whose ``weight`` (an
  ``nn.Embedding``) or ``W_E`` (TransformerLens) is the matrix. Its token axis is the axis of
  length ``p``, ``p + 1`` or ``p + 2`` (extra tokens such as ``=``), the first one if both
  qualify, so Nanda et al.'s ``(d_model, d_vocab)`` layout works too; only the first ``p``
  tokens (the residues) enter the spectrum. Default: ``fourier_points``, else the only
  ``nn.Embedding`` of the model;
* ``neurons``: a module name whose output holds the neurons on the last axis (``(B, N)`` or
  ``(B, T, N)``, read at ``position``). Default: ``fourier_points``, else none (the neuron
  statistics are left out);
* ``unembedding``: like ``embedding``, the matrix whose output axis has length ``p``.

>>> from inspect_kit.zoo import build
>>> pts = resolve(build("modadd", p=7, d=4, width=8), 7, embedding=None, neurons=None,
...               unembedding=None, position=None)
>>> pts.embedding, pts.neurons, pts.unembedding
('embed.weight', 'act', 'unembed.weight')
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from inspect_kit.errors import OptionError, UnsupportedModelError


@dataclasses.dataclass(frozen=True)
class Points:
    """Resolved locations: parameter names (with the token axis) and the neuron module."""

    embedding: str
    embedding_axis: int
    neurons: str | None
    unembedding: str | None
    unembedding_axis: int
    position: int | None


def _parameter(model: nn.Module, name: str, what: str) -> str:
    params = dict(model.named_parameters())
    if name in params:
        return name
    modules = dict(model.named_modules())
    if name in modules:
        for attr in ("weight", "W_E", "W_U"):
            full = f"{name}.{attr}" if name else attr
            if full in params:
                return full
        raise OptionError(f"{what}={name!r} is a module without a 'weight', 'W_E' or 'W_U' "
                          "parameter; name the parameter itself, e.g. 'embed.weight'")
    hint = [n for n in params if n.endswith(("weight", "W_E", "W_U"))][:8]
    raise OptionError(f"{what}={name!r} is neither a parameter nor a module of the model; "
                      f"parameters include {hint}")


def _token_axis(shape: tuple[int, ...], p: int, what: str, name: str) -> int:
    if len(shape) != 2:
        raise OptionError(f"{what} {name!r} has shape {shape}; it must be a matrix with one "
                          f"axis over the {p} residues")
    for axis in (0, 1):
        if p <= shape[axis] <= p + 2:
            return axis
    raise OptionError(f"{what} {name!r} of shape {shape} has no axis of length {p} to {p + 2} "
                      f"(the residues mod {p}); check p or name another matrix")


def _default(model: nn.Module, key: str) -> Any:
    points = getattr(model, "fourier_points", None)
    return points.get(key) if isinstance(points, dict) else None


def resolve(model: nn.Module, p: int, *, embedding: str | None, neurons: str | None,
            unembedding: str | None, position: int | None) -> Points:
    """The :class:`Points` of ``model`` from the options, ``model.fourier_points`` or the
    defaults of the module docstring."""
    emb = embedding if embedding is not None else _default(model, "embedding")
    if emb is None:
        found = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
        if len(found) != 1:
            raise UnsupportedModelError(
                f"{type(model).__name__} has {len(found)} nn.Embedding modules and no "
                "'fourier_points'; pass embedding='name' (the token embedding module or "
                "parameter)")
        emb = found[0]
    emb = _parameter(model, emb, "embedding")
    params = dict(model.named_parameters())
    emb_axis = _token_axis(tuple(params[emb].shape), p, "embedding", emb)
    neu = neurons if neurons is not None else _default(model, "neurons")
    if neu is not None and neu not in dict(model.named_modules()):
        raise OptionError(f"neurons={neu!r} is not a module of the model; name the activation "
                          "module whose output are the neurons (e.g. 'act' or 'blocks.0.mlp.act')")
    unemb = unembedding if unembedding is not None else _default(model, "unembedding")
    unemb_axis = 0
    if unemb is not None:
        unemb = _parameter(model, unemb, "unembedding")
        unemb_axis = _token_axis(tuple(params[unemb].shape), p, "unembedding", unemb)
    pos = position if position is not None else _default(model, "position")
    return Points(emb, emb_axis, neu, unemb, unemb_axis, pos)


def token_matrix(state: dict[str, torch.Tensor], name: str, axis: int, p: int) -> torch.Tensor:
    """The ``(p, d)`` rows of the residues from parameter ``name`` of a state dict (float64)."""
    if name not in state:
        raise OptionError(f"the state has no tensor {name!r}; a trajectory must come from the "
                          "same architecture as the model")
    t = state[name].detach().to(torch.float64)
    t = t if axis == 0 else t.T
    return t[:p].cpu()
