"""Per-head statistics of attention matrices ``A`` (B, H, Q, K): all pooled over images and
queries, one number per head unless noted.

* **entropy** (nats): H_q = -sum_k p_qk log p_qk with p = |A| / sum_k |A| (p = A for softmax
  attention); mean over queries and images. Uniform attention over K keys gives log K.
* **attention distance** (Dosovitskiy et al. 2021, arXiv 2010.11929, Fig. 7, there in pixels;
  here in patch-grid cells, multiply by the patch size for pixels): for patch queries,
  d_q = sum_k w_qk ||pos_q - pos_k|| / sum_k w_qk over patch keys with w = |A|; mean over queries
  and images. Prefix tokens (CLS) are left out.
* **negative mass**: sum of |A| over negative entries / sum of |A| (0 for softmax attention);
  **negative fraction**: share of entries below zero.
* **row-sum deviation**: mean over rows of |sum_k A_qk - 1| (0 up to rounding for softmax).
* **spectrum**: singular values of each (Q, K) matrix, descending (KArAt paper, Maity et al. 2025,
  arXiv 2503.10632, Figs. 5 and 13 plot ln sigma before and after the activation).
* **score range**: (min, max) of the finite pre-activation scores per head: the domain on which a
  learnable score -> weight function (Fourier-KArAt) is actually used.

Rows that are entirely NaN (fully masked queries) are ignored.
"""

from __future__ import annotations

import math

import torch


def _rows_ok(a: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(a).all(-1)  # (B, H, Q)


def _mean_over_rows(v: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """(B, H, Q) -> (H,) mean over images and valid queries."""
    v = torch.where(ok, v, torch.zeros_like(v))
    n = ok.sum((0, 2)).clamp_min(1)
    return v.sum((0, 2)) / n


def entropy(a: torch.Tensor) -> torch.Tensor:
    """Per-head mean row entropy (nats) of p = |A| / sum_k |A|."""
    ok = _rows_ok(a)
    m = torch.nan_to_num(a.abs().double())
    p = m / m.sum(-1, keepdim=True).clamp_min(1e-300)
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    return _mean_over_rows(h, ok & (m.sum(-1) > 0))


def grid_positions(grid: tuple[int, int]) -> torch.Tensor:
    """(h*w, 2) row-major (row, col) coordinates of patch tokens."""
    h, w = grid
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([r.reshape(-1), c.reshape(-1)], -1).double()


def attention_distance(a: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    """Per-head mean attention distance (patch-grid cells) between patch queries and patch keys."""
    n = grid[0] * grid[1]
    if a.shape[-1] != prefix + n or a.shape[-2] != prefix + n:
        raise ValueError(f"attention of shape {tuple(a.shape)} does not fit {prefix} prefix "
                         f"tokens and a {grid[0]}x{grid[1]} grid")
    pos = grid_positions(grid)
    d = torch.cdist(pos, pos)  # (n, n)
    w = a[..., prefix:, prefix:].abs().double()
    ok = torch.isfinite(w).all(-1)
    w = torch.nan_to_num(w)
    tot = w.sum(-1)
    dist = (w * d).sum(-1) / tot.clamp_min(1e-300)
    return _mean_over_rows(dist, ok & (tot > 0))


def negative_mass(a: torch.Tensor) -> torch.Tensor:
    """Per head: sum of |A| over negative entries / sum of |A|."""
    m = torch.nan_to_num(a.double())
    neg = (-m).clamp_min(0).sum((0, 2, 3))
    return neg / m.abs().sum((0, 2, 3)).clamp_min(1e-300)


def negative_fraction(a: torch.Tensor) -> torch.Tensor:
    """Per head: share of entries below zero."""
    return (a < 0).double().mean((0, 2, 3))


def row_sum_deviation(a: torch.Tensor) -> torch.Tensor:
    """Per head: mean over rows of |sum_k A_qk - 1|."""
    ok = _rows_ok(a)
    dev = (torch.nan_to_num(a.double()).sum(-1) - 1.0).abs()
    return _mean_over_rows(dev, ok)


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """(B, H, Q, K) -> (B, H, min(Q, K)) singular values, descending (NaN for non-finite
    matrices, e.g. scores with -inf masks)."""
    x = a.double()
    finite = torch.isfinite(x).all(-1).all(-1)
    s = torch.linalg.svdvals(torch.where(finite[..., None, None], x, torch.zeros_like(x)))
    return torch.where(finite[..., None], s, torch.full_like(s, math.nan))


def spectrum_summary(a: torch.Tensor) -> torch.Tensor:
    """(3, H, r): min, mean and max over images of the singular values (NaN-aware)."""
    s = singular_values(a)
    lo = torch.where(torch.isnan(s), torch.full_like(s, math.inf), s).amin(0)
    hi = torch.where(torch.isnan(s), torch.full_like(s, -math.inf), s).amax(0)
    mean = s.nanmean(0)
    out = torch.stack([lo, mean, hi])
    return torch.where(torch.isfinite(out), out, torch.full_like(out, math.nan))


def score_range(s: torch.Tensor) -> torch.Tensor:
    """(H, 2): min and max of the finite entries per head."""
    x = s.double()
    fin = torch.isfinite(x)
    lo = torch.where(fin, x, torch.full_like(x, math.inf)).amin((0, 2, 3))
    hi = torch.where(fin, x, torch.full_like(x, -math.inf)).amax((0, 2, 3))
    return torch.stack([lo, hi], -1)


def cls_maps(a: torch.Tensor, prefix: int, cls_index: int = 0,
             grid: tuple[int, int] | None = None) -> torch.Tensor:
    """CLS-to-patch attention ``A[:, :, cls_index, prefix:]``: (B, H, h, w) with a grid, else
    (B, H, K - prefix)."""
    row = a[:, :, cls_index, prefix:]
    return row.reshape(*row.shape[:2], *grid) if grid is not None else row


def infer_layout(n_tokens: int, prefix: int | None = None,
                 grid: tuple[int, int] | None = None) -> tuple[int, tuple[int, int] | None]:
    """``(prefix tokens, patch grid)`` for ``n_tokens`` keys: as given, else 1 prefix (CLS) when
    n - 1 is a square, 0 when n is, else no grid."""
    if grid is not None:
        g = (int(grid[0]), int(grid[1]))
        p = n_tokens - g[0] * g[1] if prefix is None else int(prefix)
        return p, (g if p + g[0] * g[1] == n_tokens and p >= 0 else None)
    cands = [int(prefix)] if prefix is not None else [1, 0]
    for p in cands:
        side = math.isqrt(max(n_tokens - p, 0))
        if side > 0 and side * side == n_tokens - p:
            return p, (side, side)
    return (int(prefix) if prefix is not None else 0), None
