"""Per-operation rules of the axis tracer (:mod:`analyses.lmc.tracer`).

A rule ``rule(tracer, name, args, kwargs, out)`` reads the axis variables of the inputs
(``tracer.vars``), unifies or fixes them (``tracer.sets``) and records the variables of the
output (``tracer.set``). A rule that meets a form it does not understand raises, and the tracer
then fixes every axis the call touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

UNARY = set("""
relu relu_ gelu silu silu_ tanh tanh_ sigmoid sigmoid_ exp exp_ log log2 log10 abs abs_ neg __neg__
__abs__ __pos__ sqrt rsqrt square sin cos erf erfc softplus leaky_relu leaky_relu_ elu elu_ selu
celu hardtanh hardtanh_ relu6 mish hardswish hardsigmoid logsigmoid softsign tanhshrink dropout
dropout_ alpha_dropout feature_alpha_dropout clamp clamp_ clip clip_ clamp_min clamp_max to float
double half bfloat16 type contiguous clone detach detach_ cpu cuda zeros_like ones_like full_like
empty_like nan_to_num sign reciprocal log1p expm1 floor ceil round trunc frac logical_not bool
int long requires_grad_ data softmax log_softmax isnan isfinite isinf sinh cosh atan asin acos
sgn signbit __invert__ bitwise_not fill_ zero_ normal_ uniform_
""".split())

BINARY = set("""
add sub mul div true_divide floor_divide remainder fmod pow maximum minimum fmax fmin eq ne lt le
gt ge where logical_and logical_or logical_xor atan2 hypot copysign lerp addcmul addcdiv xlogy
__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __truediv__
__rtruediv__ __itruediv__ __div__ __rdiv__ __pow__ __rpow__ __ipow__ __and__ __rand__ __or__
__ror__ __xor__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __floordiv__ __rfloordiv__ __mod__
__rmod__ add_ sub_ mul_ div_ pow_ masked_fill masked_fill_ type_as rsub bitwise_and bitwise_or
""".split())

REDUCE = set("sum mean amax amin prod std var norm logsumexp nansum nanmean all any".split())
ORDER_REDUCE = set("argmax argmin max min median mode sort argsort topk cumsum cumprod cummax "
                   "cummin kthvalue nanmedian".split())
SHAPE = set("reshape view flatten unflatten view_as reshape_as".split())

def tensors_in(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in tensors_in(o)]
    return []


def _dim(d: int, n: int) -> int:
    return d + n if d < 0 else d


def _arg(args: tuple, kwargs: dict, i: int, key: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def _unary(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0] if args else next(iter(kwargs.values()))
    if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.shape != out.shape:
        raise NotImplementedError(name)
    others = tensors_in((args[1:], kwargs))
    if others:  # e.g. clamp with tensor bounds: treat as broadcasting
        _binary(tr, name, args, kwargs, out)
        return
    tr.set(out, tr.vars(x))


def _broadcast(tr: Any, inputs: list[torch.Tensor], shape: torch.Size) -> list[int]:
    n = len(shape)
    out = []
    for k in range(n):
        size = shape[k]
        joined = None
        for t in inputs:
            j = k - (n - t.dim())
            if j < 0 or t.shape[j] != size:
                continue
            v = tr.vars(t)[j]
            joined = v if joined is None else tr.sets.union(joined, v)
        out.append(joined if joined is not None else tr.sets.new(size))
    return out


def _binary(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    if name in ("type_as",):
        tr.set(out, tr.vars(args[0]))
        return
    ins = tensors_in((args, kwargs))
    if not isinstance(out, torch.Tensor):
        raise NotImplementedError(name)
    tr.set(out, _broadcast(tr, ins, out.shape))


def _dims_arg(args: tuple, kwargs: dict, n: int) -> list[int] | None:
    d = _arg(args, kwargs, 1, "dim", None)
    if d is None or isinstance(d, torch.Tensor):
        return None
    ds = [d] if isinstance(d, int) else list(d)
    return sorted(_dim(x, n) for x in ds)


def _reduce(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    if name in ("max", "min") and (len(args) > 1 and isinstance(args[1], torch.Tensor)
                                   or isinstance(kwargs.get("other"), torch.Tensor)):
        _binary(tr, name, args, kwargs, out)
        return
    vs = tr.vars(x)
    dims = _dims_arg(args, kwargs, x.dim())
    if name in ("sort", "argsort", "cumsum", "cumprod", "cummax", "cummin"):
        d = _dim(_arg(args, kwargs, 1, "dim", -1), x.dim())
        tr.sets.fix(vs[d])
        for t in tensors_in(out):
            tr.set(t, list(vs))
        return
    if name == "topk" or name == "kthvalue":
        raise NotImplementedError(name)
    if dims is None:  # full reduction
        if name in ORDER_REDUCE and name not in ("max", "min", "median", "nanmedian"):
            for v in vs:
                tr.sets.fix(v)
        for t in tensors_in(out):
            tr.set(t, [tr.sets.new(s, fixed=True) for s in t.shape])
        return
    if name in ORDER_REDUCE:
        for d in dims:
            tr.sets.fix(vs[d])
    keep = bool(kwargs.get("keepdim", args[2] if len(args) > 2 and isinstance(args[2], bool)
                           else False))
    new = [tr.sets.new(1) if i in dims else v for i, v in enumerate(vs)] if keep else \
        [v for i, v in enumerate(vs) if i not in dims]
    for t in tensors_in(out):
        if t.dim() != len(new):
            raise NotImplementedError(name)
        tr.set(t, new)


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


def _batch_norm(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    vs = tr.vars(x)
    for i, key in ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")):
        p = _arg(args, kwargs, i, key)
        if isinstance(p, torch.Tensor) and p.dim() == 1 and x.dim() >= 2:
            tr.sets.union(vs[1], tr.vars(p)[0])
    tr.set(out, list(vs))


def _conv(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    b = _arg(args, kwargs, 2, "bias")
    if _arg(args, kwargs, 6, "groups", 1) != 1 or x.dim() != w.dim():
        raise NotImplementedError("grouped or unbatched conv")
    xv, wv = tr.vars(x), tr.vars(w)
    tr.sets.union(xv[1], wv[1])
    for v in xv[2:] + wv[2:]:
        tr.sets.fix(v)
    o = wv[0] if b is None else tr.sets.union(wv[0], tr.vars(b)[0])
    tr.set(out, [xv[0], o] + [tr.sets.new(s, fixed=True) for s in out.shape[2:]])


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


def _creation(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    for t in tensors_in(out):  # values differ along every axis (arange, tensor(...)): fixed
        tr.set(t, tr.fresh(t))


RULES: dict[str, Callable[..., None]] = {
    "linear": _linear, "matmul": _matmul, "__matmul__": _matmul, "__rmatmul__": _matmul,
    "mm": _matmul, "bmm": _matmul, "einsum": _einsum, "layer_norm": _layer_norm,
    "batch_norm": _batch_norm, "instance_norm": _batch_norm, "conv1d": _conv, "conv2d": _conv,
    "conv3d": _conv, "scaled_dot_product_attention": _sdpa, "prelu": _prelu,
    "embedding": _embedding, "unsqueeze": _unsqueeze, "squeeze": _squeeze,
    "transpose": _transpose, "swapaxes": _transpose, "swapdims": _transpose, "t": _transpose,
    "T": _transpose, "mT": _transpose, "permute": _permute, "expand": _expand,
    "expand_as": _expand, "broadcast_to": _expand, "__getitem__": _getitem, "cat": _cat,
    "concat": _cat, "concatenate": _cat, "stack": _cat, "chunk": _split, "split": _split,
    "tensor_split": _split, "unbind": _split, "arange": _creation, "tensor": _creation,
    "linspace": _creation, "rand": _creation, "randn": _creation, "as_tensor": _creation,
}


def rule_for(name: str) -> Callable[..., None] | None:
    """The rule for a torch function name, or None (then every touched axis is fixed)."""
    rule = RULES.get(name)
    if rule is not None:
        return rule
    if name in UNARY:
        return _unary
    if name in BINARY:
        return _binary
    if name in REDUCE or name in ORDER_REDUCE:
        return _reduce
    if name in SHAPE:
        return _reshape
    return None
