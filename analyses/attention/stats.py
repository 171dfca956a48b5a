"""Per-head statistics of attention matrices ``A`` (B, H, Q, K): all pooled over inputs and
queries, one number per head unless noted.

* **entropy** (nats): H_q = -sum_k p_qk log p_qk with p = |A| / sum_k |A| (p = A for softmax
  attention); mean over queries and inputs. Uniform attention over K keys gives log K.
* **attention distance** (Dosovitskiy et al. 2021, arXiv 2010.11929, Fig. 7, there in pixels;
  here in patch-grid cells, multiply by the patch size for pixels): for patch queries,
  d_q = sum_k w_qk ||pos_q - pos_k|| / sum_k w_qk over patch keys with w = |A|; mean over queries
  and inputs. Prefix tokens (CLS) are left out. For token sequences the same with the token
  distance |q - k| (:func:`token_distance`).
* **negative mass**: sum of |A| over negative entries / sum of |A| (0 for softmax attention);
  **negative fraction**: share of entries below zero.
* **row-sum deviation**: mean over rows of |sum_k A_qk - 1| (0 up to rounding for softmax).
* **spectrum**: singular values of each (Q, K) matrix, descending (KArAt paper, Maity et al. 2025,
  arXiv 2503.10632, Figs. 5 and 13 plot ln sigma before and after the activation).
* **score range**: (min, max) of the finite pre-activation scores per head: the domain on which a
  learnable score -> weight function (Fourier-KArAt) is actually used.

``mask`` (B, N) marks the real tokens of padded sequences (``attention_mask != 0``): padding keys
are left out of every statistic and padding queries are not counted (their rows are zeroed for
the spectrum). It applies to the key axis when K = N and to the query axis when Q = N; pass None
for attention it does not describe (windows, other batch sizes). Rows that are entirely NaN
(queries with every key masked) are ignored.

>>> a = torch.tensor([[[[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [1/3, 1/3, 1/3]]]])
>>> mask = torch.tensor([[True, True, False]])  # token 2 is padding
>>> token_distance(a, mask)   # (0.5 * 1 + 0.2 * 1) / 2 over the two real queries
tensor([0.3500], dtype=torch.float64)
"""

from __future__ import annotations

import math

import torch


def _masks(a: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, Q) valid queries and (B, 1, 1, K) valid keys (all True without a usable mask)."""
    B, _, Q, K = a.shape
    q = torch.ones(B, 1, Q, dtype=torch.bool, device=a.device)
    k = torch.ones(B, 1, 1, K, dtype=torch.bool, device=a.device)
    if mask is None or mask.dim() != 2 or mask.shape[0] != B:
        return q, k
    m = mask.to(device=a.device, dtype=torch.bool)
    if m.shape[1] == K:
        k = m[:, None, None, :]
    if m.shape[1] == Q:
        q = m[:, None, :]
    return q, k


def usable(a: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Whether ``mask`` (B, N) describes the keys of ``a`` (B, H, Q, K)."""
    return mask is not None and mask.dim() == 2 and tuple(mask.shape) == (a.shape[0], a.shape[-1])


def _rows_ok(a: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(a).all(-1)  # (B, H, Q)


def _mean_over_rows(v: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """(B, H, Q) -> (H,) mean over inputs and valid queries."""
    v = torch.where(ok, v, torch.zeros_like(v))
    n = ok.sum((0, 2)).clamp_min(1)
    return v.sum((0, 2)) / n


def _weights(a: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """|A| with padding keys zeroed (float64, NaN -> 0) and the (B, H, Q) valid-row mask."""
    qv, kv = _masks(a, mask)
    ok = _rows_ok(a) & qv
    m = torch.where(kv, torch.nan_to_num(a.abs().double()), torch.zeros((), dtype=torch.float64))
    return m, ok


def entropy(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-head mean row entropy (nats) of p = |A| / sum_k |A| over real keys and queries."""
    m, ok = _weights(a, mask)
    p = m / m.sum(-1, keepdim=True).clamp_min(1e-300)
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    return _mean_over_rows(h, ok & (m.sum(-1) > 0))


def grid_positions(grid: tuple[int, int]) -> torch.Tensor:
    """(h*w, 2) row-major (row, col) coordinates of patch tokens."""
    h, w = grid
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([r.reshape(-1), c.reshape(-1)], -1).double()


def _mean_distance(w: torch.Tensor, ok: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    tot = w.sum(-1)
    dist = (w * d.to(w.device)).sum(-1) / tot.clamp_min(1e-300)
    return _mean_over_rows(dist, ok & (tot > 0))


def attention_distance(a: torch.Tensor, grid: tuple[int, int], prefix: int) -> torch.Tensor:
    """Per-head mean attention distance (patch-grid cells) between patch queries and patch keys."""
    n = grid[0] * grid[1]
    if a.shape[-1] != prefix + n or a.shape[-2] != prefix + n:
        raise ValueError(f"attention of shape {tuple(a.shape)} does not fit {prefix} prefix "
                         f"tokens and a {grid[0]}x{grid[1]} grid")
    pos = grid_positions(grid)
    w, ok = _weights(a[..., prefix:, prefix:], None)
    return _mean_distance(w, ok, torch.cdist(pos, pos))


def token_distance(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-head mean token distance sum_k w_qk |q - k| / sum_k w_qk (w = |A| over real keys),
    mean over real queries and inputs; square (self-)attention only."""
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"token distance needs self-attention (Q = K), got {tuple(a.shape)}")
    idx = torch.arange(a.shape[-1], dtype=torch.float64)
    w, ok = _weights(a, mask)
    return _mean_distance(w, ok, (idx[:, None] - idx[None, :]).abs())


def negative_mass(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per head: sum of |A| over negative entries / sum of |A| (real queries and keys)."""
    qv, kv = _masks(a, mask)
    keep = qv[..., None] & kv
    m = torch.where(keep, torch.nan_to_num(a.double()), torch.zeros((), dtype=torch.float64))
    neg = (-m).clamp_min(0).sum((0, 2, 3))
    return neg / m.abs().sum((0, 2, 3)).clamp_min(1e-300)


def negative_fraction(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per head: share of entries below zero (real queries and keys)."""
    qv, kv = _masks(a, mask)
    keep = (qv[..., None] & kv).expand(a.shape[0], 1, a.shape[-2], a.shape[-1]).double()
    return ((a < 0).double() * keep).sum((0, 2, 3)) / keep.sum((0, 2, 3)).clamp_min(1)


def row_sum_deviation(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per head: mean over real query rows of |sum_k A_qk - 1| (real keys)."""
    qv, kv = _masks(a, mask)
    ok = _rows_ok(a) & qv
    m = torch.where(kv, torch.nan_to_num(a.double()), torch.zeros((), dtype=torch.float64))
    return _mean_over_rows((m.sum(-1) - 1.0).abs(), ok)


def singular_values(a: torch.Tensor) -> torch.Tensor:
    """(B, H, Q, K) -> (B, H, min(Q, K)) singular values, descending (NaN for non-finite
    matrices, e.g. scores with -inf masks)."""
    x = a.double()
    finite = torch.isfinite(x).all(-1).all(-1)
    s = torch.linalg.svdvals(torch.where(finite[..., None, None], x, torch.zeros_like(x)))
    return torch.where(finite[..., None], s, torch.full_like(s, math.nan))


def spectrum_summary(a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(3, H, r): min, mean and max over inputs of the singular values (NaN-aware); padding rows
    and columns are zeroed first (the spectrum of the real-token block plus zeros)."""
    if mask is not None:
        qv, kv = _masks(a, mask)
        a = torch.where(qv[..., None] & kv, a, torch.zeros((), dtype=a.dtype, device=a.device))
    s = singular_values(a)
    lo = torch.where(torch.isnan(s), torch.full_like(s, math.inf), s).amin(0)
    hi = torch.where(torch.isnan(s), torch.full_like(s, -math.inf), s).amax(0)
    mean = s.nanmean(0)
    out = torch.stack([lo, mean, hi])
    return torch.where(torch.isfinite(out), out, torch.full_like(out, math.nan))


def score_range(s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(H, 2): min and max of the finite entries per head (real queries and keys)."""
    x = s.double()
    qv, kv = _masks(s, mask)
    fin = torch.isfinite(x) & qv[..., None] & kv
    lo = torch.where(fin, x, torch.full_like(x, math.inf)).amin((0, 2, 3))
    hi = torch.where(fin, x, torch.full_like(x, -math.inf)).amax((0, 2, 3))
    return torch.stack([lo, hi], -1)


def query_rows(a: torch.Tensor, query: torch.Tensor, prefix: int = 0,
               grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Row ``query[b]`` of every input b over the keys after the prefix:
    ``A[b, :, query[b], prefix:]``, (B, H, h, w) with a grid, else (B, H, K - prefix)."""
    b = torch.arange(a.shape[0], device=a.device)
    row = a[b, :, query.to(a.device).long(), prefix:]
    return row.reshape(*row.shape[:2], *grid) if grid is not None else row


def cls_maps(a: torch.Tensor, prefix: int, cls_index: int = 0,
             grid: tuple[int, int] | None = None) -> torch.Tensor:
    """CLS-to-patch attention ``A[:, :, cls_index, prefix:]``: (B, H, h, w) with a grid, else
    (B, H, K - prefix)."""
    return query_rows(a, torch.full((a.shape[0],), int(cls_index)), prefix, grid)


def infer_layout(n_tokens: int, prefix: int | None = None,
                 grid: tuple[int, int] | None = None) -> tuple[int, tuple[int, int] | None]:
    """``(prefix tokens, patch grid)`` for ``n_tokens`` keys of an *image* model: as given, else
    1 prefix (CLS) when n - 1 is a square, 0 when n is, else no grid. Never used for token
    sequences (a text model has no grid)."""
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
