"""Window layout of windowed attention (Swin, Liu et al. 2021, arXiv 2103.14030).

A Swin block partitions its (H, W) feature map into windows of ``window_size`` (wh, ww) after a
cyclic shift by ``shift_size`` (sh, sw) (every second block), pads H and W up to multiples of
the window, and runs attention inside every window: the attention module sees
(B * nW, N, C) tokens with N = wh * ww, windows image-major and row-major within the image
(timm ``window_partition``), and its weights are (B * nW, heads, N, N), with the relative
position bias added and, in shifted blocks, -100 between tokens that came from different
regions. The layout is read from the module (``window_size``) and from the nearest enclosing
module that declares ``shift_size`` (and ``input_resolution``): timm ``WindowAttention`` inside
``SwinTransformerBlock``, HuggingFace ``SwinSelfAttention`` inside ``SwinLayer``.

>>> from torch import nn
>>> blk = nn.Module(); blk.shift_size, blk.input_resolution = (2, 2), (8, 12)
>>> att = nn.Module(); att.window_size = (4, 4)
>>> layout(att, [blk], keys=16)
{'window_size': (4, 4), 'shift_size': (2, 2), 'resolution': (8, 12), 'grid': (2, 3)}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn


def _pair(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, int):
        return (int(v), int(v))
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        return None
    return (a, b)


def layout(module: nn.Module, ancestors: Sequence[nn.Module], keys: int) -> dict[str, Any] | None:
    """The window layout of ``module`` (None when it is not windowed attention over ``keys``).

    ``ancestors``: the enclosing modules, innermost first.
    """
    win = _pair(getattr(module, "window_size", None))
    if win is None or win[0] * win[1] != keys:
        return None
    shift: tuple[int, int] | None = (0, 0)
    res = None
    for a in ancestors:
        if hasattr(a, "shift_size"):
            shift = _pair(a.shift_size)
            res = _pair(getattr(a, "input_resolution", None))
            break
    out: dict[str, Any] = {"window_size": win, "shift_size": shift or (0, 0),
                           "resolution": res, "grid": None}
    if res is not None:
        out["grid"] = (math.ceil(res[0] / win[0]), math.ceil(res[1] / win[1]))
    return out


def ancestors_of(named: dict[str, nn.Module], name: str) -> list[nn.Module]:
    """The modules enclosing ``name`` in a ``named_modules`` dict, innermost first."""
    parts = name.split(".") if name else []
    out = []
    for i in range(len(parts) - 1, -1, -1):
        parent = ".".join(parts[:i])
        if parent in named:
            out.append(named[parent])
    return out


def of_module(named: dict[str, nn.Module], name: str, keys: int) -> dict[str, Any] | None:
    """:func:`layout` of the module called ``name`` in ``named`` (``named_modules`` as a dict)."""
    module = named.get(name)
    return None if module is None else layout(module, ancestors_of(named, name), keys)
