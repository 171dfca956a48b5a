"""Rules for convolutional networks: convolutions, normalisations over a channel axis, pooling,
resampling and padding.

The channel axis (dim 1 of a batch, dim 0 of an unbatched input) is what these ops carry from
input to output unchanged in meaning, so it keeps its axis variable; spatial axes are always
fixed (the order of positions matters to a convolution). In the forms below ``x`` is
``(N, C, *spatial)``:

* ``conv{1,2,3}d``: ``x[:, i]`` joins ``weight[:, i]``; the output channel is ``weight[o]`` and
  ``bias[o]``. With ``groups = G`` the channel axes factor as ``(G, C/G)``: the groups move as
  blocks and one permutation acts inside every group (depthwise: ``C/G = 1``).
  ``conv_transpose{1,2,3}d`` has the weight's two channel axes the other way round.
* ``batch_norm`` / ``instance_norm``: ``weight``, ``bias``, ``running_mean`` and
  ``running_var`` move with the channel; ``group_norm``: the channel factors as
  ``(G, C/G)`` as for a grouped convolution.
* pooling (max, average, adaptive, Lp; 1d/2d/3d, with or without indices), ``interpolate``:
  every leading axis (batch, channel) carries over, the spatial ones are fixed. A following
  ``flatten``/``view``/``reshape`` of ``(N, C, h, w)`` merges ``C`` with the fixed spatial
  axes into one composite feature axis, so channel ``c`` moves the block of features
  ``c*h*w ... (c+1)*h*w - 1`` (handled by the shape rules).
* ``pad``: the padded axes are fixed, the others carry over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from .base import _arg, tensors_in


def _conv(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    b = _arg(args, kwargs, 2, "bias")
    transposed = name.startswith("conv_transpose")
    groups = int(_arg(args, kwargs, 6, "groups", 1))
    c = x.dim() - w.dim() + 1  # channel axis of x: 1 batched, 0 unbatched
    if c not in (0, 1) or out.dim() != x.dim():
        raise NotImplementedError(f"{name} of a {x.dim()}-d input")
    xv, wv = tr.vars(x), tr.vars(w)
    w_in, w_out = (0, 1) if transposed else (1, 0)
    for v in xv[c + 1:] + wv[2:]:
        tr.sets.fix(v)
    if groups == 1:
        tr.sets.union(xv[c], wv[w_in])
        o = wv[w_out]
    else:  # channels = (group, index within group); the weight's per-group axis = the index
        cin, cout = x.shape[c], out.shape[c]
        g_in, i_in = _factor(tr, xv[c], groups, cin)
        if transposed:  # weight (C_in, C_out/G, ...): axis 0 = (G, C_in/G)
            g_w, i_w = _factor(tr, wv[0], groups, cin)
            tr.sets.union(g_in, g_w)
            if i_in is not None and i_w is not None:
                tr.sets.union(i_in, i_w)
            o = wv[1] if cout == groups else tr.sets.merge([g_in, wv[1]])
        else:  # weight (C_out, C_in/G, ...): axis 0 = (G, C_out/G)
            g_w, _ = _factor(tr, wv[0], groups, cout)
            tr.sets.union(g_in, g_w)
            if i_in is not None:
                tr.sets.union(i_in, wv[1])
            o = wv[0]
    if b is not None:
        o = tr.sets.union(o, tr.vars(b)[0])
    tr.set(out, list(xv[:c]) + [o] + [tr.sets.new(s, fixed=True) for s in out.shape[c + 1:]])


def _factor(tr: Any, v: int, groups: int, size: int) -> tuple[int, int | None]:
    """``(group, index within group)`` variables of a channel axis; a depthwise axis (one
    channel per group) is its own group variable, with no index."""
    if size == groups:
        return v, None
    g, i = tr.sets.split(v, [groups, size // groups])
    return g, i


def _batch_norm(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    vs = tr.vars(x)
    for i, key in ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")):
        p = _arg(args, kwargs, i, key)
        if isinstance(p, torch.Tensor) and p.dim() == 1 and x.dim() >= 2:
            tr.sets.union(vs[1], tr.vars(p)[0])
    tr.set(out, list(vs))


def _group_norm(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    groups = int(_arg(args, kwargs, 1, "num_groups"))
    if x.dim() < 2:
        raise NotImplementedError("group_norm of a 1-d input")
    vs = tr.vars(x)
    for i, key in ((2, "weight"), (3, "bias")):
        p = _arg(args, kwargs, i, key)
        if isinstance(p, torch.Tensor):
            tr.sets.union(vs[1], tr.vars(p)[0])
    if groups > 1:
        tr.sets.split(vs[1], [groups, x.shape[1] // groups])
    tr.set(out, list(vs))


def _spatial_dims(name: str, x: torch.Tensor) -> int:
    m = re.search(r"([123])d", name)
    return int(m.group(1)) if m else x.dim() - 2


def _pool(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    """Leading (batch, channel) axes carry over; the ``k`` spatial axes are fixed."""
    x = args[0] if args else kwargs["input"]
    k = _spatial_dims(name, x)
    lead = x.dim() - k
    vs = tr.vars(x)
    for v in vs[lead:]:
        tr.sets.fix(v)
    for t in tensors_in(out):
        if t.dim() != x.dim() or tuple(t.shape[:lead]) != tuple(x.shape[:lead]):
            raise NotImplementedError(f"{name} changed a leading axis")
        tr.set(t, list(vs[:lead]) + [tr.sets.new(s, fixed=True) for s in t.shape[lead:]])


def _pad(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    pad = list(_arg(args, kwargs, 1, "pad"))
    k = len(pad) // 2
    if out.dim() != x.dim() or k > x.dim():
        raise NotImplementedError("pad form")
    vs = list(tr.vars(x))
    for d in range(x.dim() - k, x.dim()):
        if pad[2 * (x.dim() - 1 - d)] == 0 and pad[2 * (x.dim() - 1 - d) + 1] == 0:
            continue
        tr.sets.fix(vs[d])
        vs[d] = tr.sets.new(out.shape[d], fixed=True)
    tr.set(out, vs)


POOLS = [f"{kind}{d}d{suffix}" for d in (1, 2, 3)
         for kind in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool")
         for suffix in ("", "_with_indices")]
RESAMPLE = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

SPATIAL_RULES: dict[str, Callable[..., None]] = {
    **{f"conv{d}d": _conv for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _conv for d in (1, 2, 3)},
    "batch_norm": _batch_norm, "instance_norm": _batch_norm, "group_norm": _group_norm,
    **{n: _pool for n in POOLS + RESAMPLE},
    "pad": _pad,
}
