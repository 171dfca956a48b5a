"""Rules for elementwise maps, broadcasting binary operations and reductions.

Unary maps keep every axis; binary ones unify the axes that broadcasting aligns (a residual
addition ``out += identity`` joins the two branches' channel axes: the residual stream);
reductions remove the reduced axes, and order-dependent ones (``argmax``, ``sort``, ``cumsum``)
fix them first.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import _arg, _broadcast, _dim, tensors_in

UNARY = set("""
relu relu_ gelu silu silu_ tanh tanh_ sigmoid sigmoid_ exp exp_ log log2 log10 abs abs_ neg __neg__
__abs__ __pos__ sqrt rsqrt square sin cos erf erfc softplus leaky_relu leaky_relu_ elu elu_ selu
celu hardtanh hardtanh_ relu6 mish hardswish hardsigmoid logsigmoid softsign tanhshrink dropout
dropout_ alpha_dropout feature_alpha_dropout dropout1d dropout2d dropout3d clamp clamp_ clip clip_
clamp_min clamp_max to float
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

def _unary(tr: Any, name: str, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0] if args else next(iter(kwargs.values()))
    if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or x.shape != out.shape:
        raise NotImplementedError(name)
    others = tensors_in((args[1:], kwargs))
    if others:  # e.g. clamp with tensor bounds: treat as broadcasting
        _binary(tr, name, args, kwargs, out)
        return
    tr.set(out, tr.vars(x))



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

