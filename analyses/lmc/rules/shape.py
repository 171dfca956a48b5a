"""Rules for shape operations: reshape/view/flatten (one-to-one axes kept, split axes become
child variables, merged axes a composite variable), (un)squeeze, transpose, permute, expand,
indexing, cat/stack, split/chunk, and tensor creation."""

from __future__ import annotations

from typing import Any

import torch

from .base import _arg, _broadcast, _dim, tensors_in

SHAPE = set("reshape view flatten unflatten view_as reshape_as".split())


def _map_shape(tr: Any, vs: list[int], a: tuple[int, ...], b: tuple[int, ...]) -> list[int]:
    """Variables of a reshape from shape ``a`` (variables ``vs``) to shape ``b``."""
    ia = [i for i, s in enumerate(a) if s != 1]
    ib = [i for i, s in enumerate(b) if s != 1]
    out: list[int | None] = [None] * len(b)
    for i, s in enumerate(b):
        if s == 1:
            out[i] = tr.sets.new(1)
    p = q = 0
    while p < len(ia) or q < len(ib):
        ga, gb = [ia[p]], [ib[q]]
        pa, pb = a[ia[p]], b[ib[q]]
        p, q = p + 1, q + 1
        while pa != pb:
            if pa < pb:
                ga.append(ia[p])
                pa *= a[ia[p]]
                p += 1
            else:
                gb.append(ib[q])
                pb *= b[ib[q]]
                q += 1
        if len(ga) == 1 and len(gb) == 1:
            out[gb[0]] = vs[ga[0]]
        elif len(ga) == 1:
            for i, v in zip(gb, tr.sets.split(vs[ga[0]], [b[i] for i in gb])):
                out[i] = v
        elif len(gb) == 1:
            out[gb[0]] = tr.sets.merge([vs[i] for i in ga])
        else:
            for i in ga:
                tr.sets.fix(vs[i])
            for i in gb:
                out[i] = tr.sets.new(b[i], fixed=True)
    return [int(v) for v in out]  # type: ignore[arg-type]


def _reshape(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    tr.set(out, _map_shape(tr, tr.vars(x), tuple(x.shape), tuple(out.shape)))


def _unsqueeze(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    d = _dim(_arg(args, kwargs, 1, "dim"), x.dim() + 1)
    vs = list(tr.vars(x))
    vs.insert(d, tr.sets.new(1))
    tr.set(out, vs)


def _squeeze(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    tr.set(out, _map_shape(tr, tr.vars(x), tuple(x.shape), tuple(out.shape)))


def _transpose(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    vs = list(tr.vars(x))
    n = x.dim()
    if name in ("t", "T") or (name == "mT"):
        if n >= 2:
            vs[-1], vs[-2] = vs[-2], vs[-1]
        if name == "T" and n > 2:
            vs = vs[::-1]
    else:
        d0, d1 = _dim(_arg(args, kwargs, 1, "dim0"), n), _dim(_arg(args, kwargs, 2, "dim1"), n)
        vs[d0], vs[d1] = vs[d1], vs[d0]
    tr.set(out, vs)


def _permute(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    dims = args[1:] if len(args) > 2 else _arg(args, kwargs, 1, "dims")
    if isinstance(dims, int):
        dims = (dims,)
    vs = tr.vars(x)
    tr.set(out, [vs[_dim(d, x.dim())] for d in dims])


def _expand(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    vs = tr.vars(x)
    n, m = out.dim(), x.dim()
    new = []
    for k in range(n):
        j = k - (n - m)
        if j >= 0 and x.shape[j] == out.shape[k]:
            new.append(vs[j])
        else:
            new.append(tr.sets.new(out.shape[k]))
    tr.set(out, new)


def _getitem(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x, idx = args[0], args[1]
    if not isinstance(idx, tuple):
        idx = (idx,)
    if any(isinstance(i, (torch.Tensor, list)) for i in idx):
        raise NotImplementedError("advanced indexing")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if Ellipsis in idx:
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (x.dim() - n_real) + idx[k + 1:]
    idx = idx + (slice(None),) * (x.dim() - sum(1 for i in idx if i is not None))
    vs = tr.vars(x)
    new, d = [], 0
    for i in idx:
        if i is None:
            new.append(tr.sets.new(1))
            continue
        size = x.shape[d]
        if isinstance(i, slice):
            if i.indices(size) == (0, size, 1):
                new.append(vs[d])
            else:
                tr.sets.fix(vs[d])
                new.append(tr.sets.new(len(range(*i.indices(size))), fixed=True))
        else:  # an integer position: order matters along this axis
            tr.sets.fix(vs[d])
        d += 1
    tr.set(out, new)


def _cat(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    ts = list(_arg(args, kwargs, 0, "tensors"))
    d = _arg(args, kwargs, 1, "dim", 0)
    if name == "stack":
        d = _dim(d, ts[0].dim() + 1)
        vs = _broadcast(tr, ts, ts[0].shape)
        vs.insert(d, tr.sets.new(len(ts), fixed=True))
        tr.set(out, vs)
        return
    d = _dim(d, ts[0].dim())
    n = ts[0].dim()
    new = []
    for k in range(n):
        if k == d:
            for t in ts:
                tr.sets.fix(tr.vars(t)[k])
            new.append(tr.sets.new(out.shape[k], fixed=True))
        else:
            v = tr.vars(ts[0])[k]
            for t in ts[1:]:
                v = tr.sets.union(v, tr.vars(t)[k])
            new.append(v)
    tr.set(out, new)


def _split(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    d = _dim(_arg(args, kwargs, 2, "dim", 0) if name != "unbind" else _arg(args, kwargs, 1,
                                                                            "dim", 0), x.dim())
    vs = tr.vars(x)
    tr.sets.fix(vs[d])
    for t in tensors_in(out):
        if name == "unbind":
            tr.set(t, vs[:d] + vs[d + 1:])
        else:
            tr.set(t, vs[:d] + [tr.sets.new(t.shape[d], fixed=True)] + vs[d + 1:])



def _creation(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    for t in tensors_in(out):  # values differ along every axis (arange, tensor(...)): fixed
        tr.set(t, tr.fresh(t))

