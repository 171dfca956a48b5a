"""Directions in parameter space for loss landscapes (Li et al. 2018, arXiv 1712.09913).

A direction is a dict ``name -> tensor`` shaped like the model's trainable parameters.

**Filter normalisation** (Li et al. 2018, Sec. 4): draw ``d ~ N(0, I)`` and rescale every filter
of ``d`` to the norm of the matching filter of the weights,

    d[i, j] <- d[i, j] / ||d[i, j]|| * ||theta[i, j]||,

so that the plot is not distorted by the scale invariances of the network. What a *filter* is
depends on the layer (``filter_axes`` gives the number of leading axes that index filters):

* ``nn.Linear`` weight ``(out, in)``: one row = one output unit (as in Li et al.'s code, which
  iterates over dim 0). This covers the zoo ViT's ``attn.qkv`` (a row is one query, key or value
  unit of one head), ``attn.proj``, ``patch_embed``, the MLP layers and the head.
* Convolutions ``(out, in, *k)``: one output channel (dim 0).
* KAN spline coefficients (zoo ``layers.{l}.coef (out, in, G+k)``, efficient-kan
  ``spline_weight (out, in, G+k)``, pykan ``coef (in, out, G+k)``): **one edge's coefficient
  vector** ``coef[j, i, :]`` (two leading filter axes). Each edge is its own univariate
  function and ``scale_sp[j, i] * coef[j, i, :]`` is invariant under ``coef[j, i] *= c``,
  ``scale_sp[j, i] /= c``: the per-edge analogue of the ReLU row scaling that motivates Li et
  al.'s filters. KAN ``scale_base`` / ``scale_sp`` ``(out, in)`` act like Linear weights on
  ``b(x_i)`` / the splines and use the Linear rule (one output node per filter).
* Fourier-KArAt ``attn_fn.coef (heads, 2, G)``: one head's whole ``(a, b)`` block (dim 0): the
  attention weights of head ``h`` are ``phi_h(scores)``, and scaling ``phi_h`` by ``c`` and the
  head's value rows by ``1/c`` leaves the output unchanged.
* Any other tensor with ``dim >= 2`` (position embeddings, CLS token): dim 0.
* Tensors with ``dim <= 1`` (biases, norm scales/shifts, rational-activation coefficients): one
  filter each; with ``ignore="biasbn"`` (default, as in the paper) their direction is **zero**.

``norm="layer"`` rescales each whole tensor to ``||theta_tensor||``; ``norm="none"`` keeps the raw
Gaussian. ``norm="filter"`` with ``ignore=None`` rescales 1-D tensors as one filter (Li et al.'s
code copies ``d = theta`` there instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from inspect_kit.errors import ArchitectureMismatchError, OptionError
from inspect_kit.params import Params, flatten, named_params

NORMS = ("filter", "layer", "none")
IGNORES = ("biasbn", None)
_EDGE_COEF = {("KANLayer", "coef"), ("KANLinear", "spline_weight")}


def filter_axes(model: nn.Module) -> dict[str, int]:
    """Number of leading axes that index filters, per trainable parameter (see module docstring).

    0 means the whole tensor is one filter (1-D tensors), 1 is Li et al.'s dim-0 rule, 2 is one
    KAN edge's coefficient vector.
    """
    out: dict[str, int] = {}
    for mod_name, mod in model.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p.dim() <= 1:
                out[full] = 0
            elif (type(mod).__name__, p_name) in _EDGE_COEF and p.dim() == 3:
                out[full] = 2
            else:
                out[full] = 1
    return out


def _filters(t: torch.Tensor, axes: int) -> torch.Tensor:
    """``t`` as a (n_filters, filter_size) matrix."""
    if axes == 0:
        return t.reshape(1, -1)
    n = int(np.prod(t.shape[:axes]))
    return t.reshape(n, -1)


def filter_norm_table(params: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> Params:
    """Per-filter Euclidean norms ``||t[f]||`` of every tensor, by the rule ``axes``."""
    return {n: _filters(t, axes.get(n, 1)).norm(dim=1) for n, t in params.items()}


def normalize_direction(
    d: Mapping[str, torch.Tensor],
    theta: Mapping[str, torch.Tensor],
    *,
    axes: Mapping[str, int],
    norm: str = "filter",
    ignore: str | None = "biasbn",
) -> Params:
    """Rescale ``d`` filter- or layer-wise to ``theta``'s norms; zero 1-D tensors under biasbn."""
    if norm not in NORMS:
        raise OptionError(f"norm must be one of {NORMS}, got {norm!r}")
    if ignore not in IGNORES:
        raise OptionError(f"ignore must be 'biasbn' or None, got {ignore!r}")
    out: Params = {}
    for name, t in d.items():
        w = theta[name]
        if ignore == "biasbn" and w.dim() <= 1:
            out[name] = torch.zeros_like(w)
            continue
        if norm == "none":
            out[name] = t.clone()
        elif norm == "layer":
            out[name] = t * (w.norm() / (t.norm() + 1e-10))
        else:
            a = axes.get(name, 1)
            tf, wf = _filters(t, a), _filters(w, a)
            scale = wf.norm(dim=1, keepdim=True) / (tf.norm(dim=1, keepdim=True) + 1e-10)
            out[name] = (tf * scale).reshape(t.shape)
    return out


def random_directions(
    model: nn.Module,
    n: int = 2,
    *,
    seed: int = 0,
    norm: str = "filter",
    ignore: str | None = "biasbn",
    theta: Mapping[str, torch.Tensor] | None = None,
) -> list[Params]:
    """``n`` Gaussian directions ``N(0, I)`` (own ``torch.Generator(seed)``), normalised.

    ``theta`` defaults to the model's trainable parameters (the centre of the plot).
    """
    theta = dict(theta) if theta is not None else named_params(model)
    axes = filter_axes(model)
    g = torch.Generator().manual_seed(int(seed))
    dirs = []
    for _ in range(n):
        raw = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in theta.items()}
        dirs.append(normalize_direction(raw, theta, axes=axes, norm=norm, ignore=ignore))
    return dirs


def interpolation_direction(
    theta_a: Mapping[str, torch.Tensor], theta_b: Mapping[str, torch.Tensor]
) -> Params:
    """``d = theta_b - theta_a``: coordinate 0 is ``theta_a``, coordinate 1 is ``theta_b``."""
    missing = [k for k in theta_a if k not in theta_b]
    if missing:
        raise ArchitectureMismatchError(f"tensor {missing[0]!r} is missing from the second model")
    for k, v in theta_a.items():
        if theta_b[k].shape != v.shape:
            raise ArchitectureMismatchError(
                f"tensor {k!r} has shape {tuple(v.shape)} vs {tuple(theta_b[k].shape)}; the "
                "checkpoints must share an architecture")
    return {k: (theta_b[k].to(v.dtype) - v) for k, v in theta_a.items()}


def pca_directions(
    trajectory: Sequence[Mapping[str, torch.Tensor]],
    center: Mapping[str, torch.Tensor],
    n: int = 2,
    *,
    ignore: str | None = "biasbn",
) -> tuple[list[Params], np.ndarray, np.ndarray]:
    """Principal directions of an optimisation trajectory (Li et al. 2018, Sec. 7).

    ``M = [theta_i - theta_center]`` (rows, float64; 1-D tensors zeroed under ``ignore="biasbn"``)
    is mean-centred and decomposed, ``M - mean = U S V^T``; the directions are the first ``n``
    rows of ``V^T`` (unit vectors). Returns ``(dirs, explained_variance_ratio[n], singular
    values[n])`` with ratio ``S_k^2 / sum S^2`` (what sklearn's PCA reports).
    """
    if len(trajectory) < n + 1:
        raise OptionError(
            f"PCA directions need at least {n + 1} trajectory snapshots, got {len(trajectory)}; "
            "train with snapshot_every=1 or pass more checkpoints")
    keys = list(center)
    mask = {k: (0.0 if (ignore == "biasbn" and center[k].dim() <= 1) else 1.0) for k in keys}
    rows = []
    for i, snap in enumerate(trajectory):
        missing = [k for k in keys if k not in snap]
        if missing:
            raise ArchitectureMismatchError(
                f"trajectory snapshot {i} lacks tensor {missing[0]!r}; snapshots must be state "
                "dicts of the same model")
        rows.append(flatten({k: (snap[k].double() - center[k].double()) * mask[k] for k in keys}))
    M = torch.stack(rows).numpy()
    M = M - M.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    total = float((s**2).sum())
    if total == 0.0:
        raise OptionError("the trajectory snapshots are all identical; PCA needs movement")
    ratio = s[:n] ** 2 / total
    like = {k: center[k] for k in keys}
    dirs = []
    for k in range(n):
        v = torch.from_numpy(vt[k].copy())
        # sign convention: the first snapshot (start of training) has a positive coordinate
        if float(torch.dot(torch.from_numpy(M[0]), v)) < 0:
            v = -v
        flat = {name: t.to(center[name].dtype) for name, t in _unflat(v, like).items()}
        dirs.append(flat)
    return dirs, ratio, s[:n].copy()


def _unflat(v: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out, i = {}, 0
    for k, t in like.items():
        out[k] = v[i : i + t.numel()].reshape(t.shape)
        i += t.numel()
    return out


def direction_info(dirs: Sequence[Mapping[str, torch.Tensor]],
                   theta: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``|d_k| / |theta|`` for every direction and ``cos(d1, d2)`` (float64)."""
    th = flatten(theta).double()
    flat = [flatten(d).double() for d in dirs]
    info: dict[str, float] = {"theta_norm": float(th.norm())}
    for k, f in enumerate(flat):
        info[f"norm_ratio_d{k + 1}"] = float(f.norm() / th.norm())
    if len(flat) == 2:
        info["cos_d1_d2"] = float(torch.dot(flat[0], flat[1]) / (flat[0].norm() * flat[1].norm()))
    return info
