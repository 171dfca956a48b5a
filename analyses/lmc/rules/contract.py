"""Rules for learned maps and contractions: ``linear``, ``matmul``/``bmm``, ``einsum``,
scaled-dot-product attention, ``embedding``, ``layer_norm`` and ``prelu``."""

from __future__ import annotations

from typing import Any

import torch

from .base import _arg


def _linear(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    b = _arg(args, kwargs, 2, "bias")
    xv, wv = tr.vars(x), tr.vars(w)
    tr.sets.union(xv[-1], wv[1])
    o = wv[0]
    if b is not None:
        o = tr.sets.union(o, tr.vars(b)[0])
    tr.set(out, list(xv[:-1]) + [o])


def _matmul(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    a, b = args[0], args[1]
    if name == "__rmatmul__":
        a, b = b, a
    if a.dim() < 2 or b.dim() < 2:
        raise NotImplementedError("matmul with vectors")
    av, bv = tr.vars(a), tr.vars(b)
    tr.sets.union(av[-1], bv[-2])
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    n = len(batch)
    vs = []
    for k in range(n):
        joined = None
        for t, tv in ((a, av), (b, bv)):
            j = k - (n - (t.dim() - 2))
            if j >= 0 and t.shape[j] == batch[k]:
                joined = tv[j] if joined is None else tr.sets.union(joined, tv[j])
        vs.append(joined if joined is not None else tr.sets.new(batch[k]))
    tr.set(out, vs + [av[-2], bv[-1]])


def _einsum(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    eq = args[0].replace(" ", "")
    ops = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
    if "..." in eq or "->" not in eq:
        raise NotImplementedError("einsum form")
    lhs, rhs = eq.split("->")
    letters: dict[str, int] = {}
    for spec, t in zip(lhs.split(","), ops):
        for ch, v, s in zip(spec, tr.vars(t), t.shape):
            if s == 1:
                continue
            letters[ch] = v if ch not in letters else tr.sets.union(letters[ch], v)
    tr.set(out, [letters.get(ch, tr.sets.new(s)) for ch, s in zip(rhs, out.shape)])


def _layer_norm(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    shape = _arg(args, kwargs, 1, "normalized_shape")
    w, b = _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")
    vs = tr.vars(x)
    if len(shape) != 1:
        for v in vs[-len(shape):]:
            tr.sets.fix(v)
    else:
        for p in (w, b):
            if p is not None:
                tr.sets.union(vs[-1], tr.vars(p)[0])
    tr.set(out, list(vs))



def _sdpa(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    q, k, v = args[0], args[1], args[2]
    mask = _arg(args, kwargs, 3, "attn_mask")
    if mask is not None:
        tr.fix_all(mask)
    qv, kv, vv = tr.vars(q), tr.vars(k), tr.vars(v)
    tr.sets.union(qv[-1], kv[-1])
    tr.sets.union(kv[-2], vv[-2])
    vs = []
    n = out.dim() - 2
    for i in range(n):
        joined = None
        for t, tv in ((q, qv), (k, kv), (v, vv)):
            j = i - (n - (t.dim() - 2))
            if j >= 0 and t.shape[j] == out.shape[i]:
                joined = tv[j] if joined is None else tr.sets.union(joined, tv[j])
        vs.append(joined if joined is not None else tr.sets.new(out.shape[i]))
    tr.set(out, vs + [qv[-2], vv[-1]])


def _prelu(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], args[1]
    vs = tr.vars(x)
    if w.numel() > 1:
        tr.sets.union(vs[1 if x.dim() >= 2 else 0], tr.vars(w)[0])
    tr.set(out, list(vs))


def _embedding(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    idx, w = args[0], args[1]
    wv = tr.vars(w)
    tr.sets.fix(wv[0])
    tr.set(out, list(tr.vars(idx)) + [wv[1]])

