"""Windowed attention (Swin, Liu et al. 2021, arXiv 2103.14030) reported per window.

A windowed layer records (n * nW, H, N, N) weights, image-major, windows row-major over the
(shifted, padded) feature map, N = wh * ww tokens per window (see
:mod:`inspect_kit.attention.windows`). Per window:

* **window entropy** (nW, H): the mean row entropy of each window and head over the inputs;
* **window map** (H, rows, cols) for one input: the attention each token *receives*, the mean of
  its column over the queries of its window (so every window's values sum to 1 per head for
  softmax attention), put back at the token's place in the feature map: window (i, j), offset
  (r, c) sits at (i * wh + r, j * ww + c) of the shifted map, which the cyclic shift by (sh, sw)
  took from ((i * wh + r + sh) mod H, (j * ww + c + sw) mod W); padding positions are dropped.

>>> lay = {"window_size": (1, 2), "shift_size": (0, 1), "resolution": (1, 4), "grid": (1, 2)}
>>> a = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]], [[[1.0, 0.0], [1.0, 0.0]]]])  # 2 windows
>>> window_map(a, lay, index=0)   # window 1 = shifted cols 2, 3 = original cols 3, 0
tensor([[[0.0000, 0.5000, 0.5000, 1.0000]]], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Any

import torch

from . import stats


def count(layout: dict[str, Any], batch: int, n: int) -> int | None:
    """Windows per input: from the grid when known, else ``batch / n``; None when they disagree
    (then the layer is treated as global attention over ``batch`` items)."""
    grid = layout.get("grid")
    nw = grid[0] * grid[1] if grid else (batch // n if n and batch % n == 0 else None)
    return nw if nw and nw * n == batch else None


def window_entropy(a: torch.Tensor, n_windows: int) -> torch.Tensor:
    """(nW, H): per-window, per-head mean row entropy over the inputs."""
    B, H, Q, K = a.shape
    per = a.reshape(B // n_windows, n_windows, H, Q, K).transpose(0, 1)
    return torch.stack([stats.entropy(per[w]) for w in range(n_windows)])


def window_map(a: torch.Tensor, layout: dict[str, Any], index: int) -> torch.Tensor | None:
    """(H, rows, cols) attention received per token for input ``index`` (module docstring);
    None without a known resolution."""
    res, grid = layout.get("resolution"), layout.get("grid")
    if res is None or grid is None:
        return None
    (wh, ww), (sh, sw) = layout["window_size"], layout["shift_size"] or (0, 0)
    nw = grid[0] * grid[1]
    win = a[index * nw:(index + 1) * nw].double()  # (nW, H, N, N)
    received = torch.nan_to_num(win).mean(-2)  # (nW, H, N): column means over queries
    H_img, W_img = res
    out = torch.full((a.shape[1], H_img, W_img), float("nan"), dtype=torch.float64)
    for w in range(nw):
        i, j = divmod(w, grid[1])
        for t in range(wh * ww):
            r, c = divmod(t, ww)
            pr, pc = i * wh + r, j * ww + c
            if pr < H_img and pc < W_img:
                out[:, (pr + sh) % H_img, (pc + sw) % W_img] = received[w, :, t]
    return out
