"""From recorded :class:`~inspect_kit.attention.AttentionMap` s to the Result's numbers: the
per-layer statistics (:func:`layer`), causality (:func:`is_causal`) and the rollout map of the
chosen query token with its degeneracy check (:func:`rollout_summary`; Abnar & Zuidema 2020).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from inspect_kit.attention import AttentionMap
from inspect_kit.errors import OptionError

from . import stats, windows
from .layout import Layout, describe
from .result import LayerAttention
from .rollout import POLICIES
from .rollout import rollout as rollout_fn

#: largest Q * K for which the chosen input's head-mean matrix is stored (256 x 256 tokens)
MATRIX_MAX = 256 * 256


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().double().cpu().numpy()


def n_windows(m: AttentionMap, n: int) -> int | None:
    """Windows per input of a windowed map (None for global attention)."""
    return None if m.windows is None else windows.count(m.windows, m.weights.shape[0], n)


def layer(m: AttentionMap, *, n: int, layout: Layout, index: int, query: torch.Tensor,
          n_keys: int) -> LayerAttention:
    """Statistics of one attention call (see :mod:`.stats` and :mod:`.windows`)."""
    a = m.weights.float()
    B, H, Q, K = a.shape
    square = Q == K
    nw = n_windows(m, n)
    mask = layout.mask if stats.usable(a, layout.mask) else None
    dist = query_row = matrix = win = win_ent = win_map = None
    if nw is not None:
        ws = m.windows["window_size"]
        dist = stats.attention_distance(a, ws, 0) if square else None
        win = {**m.windows, "count": nw}
        win_ent = windows.window_entropy(a, nw)
        win_map = windows.window_map(a, m.windows, index)
    elif layout.kind == "sequence":
        if square:
            dist = stats.token_distance(a, mask)
        if B == n and square:
            query_row = stats.query_rows(a[index:index + 1], query[index:index + 1])[0]
        if B == n and Q * K <= MATRIX_MAX:
            matrix = a[index].double().mean(0)
    else:
        prefix, grid = (layout.prefix, layout.grid) if K == n_keys else stats.infer_layout(K)
        if grid is not None and square:
            dist = stats.attention_distance(a, grid, prefix)
        q = int(query[index])
        if B == n and square and 0 <= q < Q and K > prefix:
            query_row = stats.query_rows(a[index:index + 1], query[index:index + 1], prefix,
                                         grid)[0]
    sc = m.scores
    return LayerAttention(
        name=m.name, family=m.family, module_type=m.module_type, shape=tuple(a.shape),
        softmax=m.softmax, entropy=_np(stats.entropy(a, mask)), distance=_np(dist),
        negative_mass=_np(stats.negative_mass(a, mask)),
        negative_fraction=_np(stats.negative_fraction(a, mask)),
        row_sum_deviation=_np(stats.row_sum_deviation(a, mask)),
        score_range=_np(stats.score_range(sc, mask)) if sc is not None else None,
        query_attention=_np(query_row), spectrum=_np(stats.spectrum_summary(a, mask)),
        score_spectrum=_np(stats.spectrum_summary(sc)) if sc is not None else None,
        matrix=_np(matrix), windows=win, window_entropy=_np(win_ent), window_map=_np(win_map))


def is_causal(maps: list[AttentionMap], n: int, mask: torch.Tensor | None) -> bool:
    """True when every global self-attention map (at least one, N >= 2) puts no weight above
    the diagonal (real queries and keys only)."""
    seen = False
    for m in maps:
        a = m.weights
        if m.windows is not None or a.shape[0] != n or a.shape[-1] != a.shape[-2] \
                or a.shape[-1] < 2:
            continue
        upper = torch.ones(a.shape[-2:], dtype=torch.bool, device=a.device).triu(1)
        if stats.usable(a, mask):
            real = mask.to(a.device)
            upper = upper & real[:, None, :, None] & real[:, None, None, :]
        if bool((torch.nan_to_num(a.abs()) * upper > 1e-30).any()):
            return False
        seen = True
    return seen


def rollout_problem(maps: list[AttentionMap], n: int) -> str | None:
    """Why rollout is not defined for these maps (None when it is)."""
    if any(m.windows is not None for m in maps):
        return ("windowed attention (Swin) mixes tokens only inside windows that move between "
                "layers; rollout is defined for global self-attention")
    shapes = {tuple(m.weights.shape[i] for i in (0, 2, 3)) for m in maps}
    if len(shapes) == 1:
        b, q, k = next(iter(shapes))
        if b == n and q == k:
            return None
    return ("rollout needs self-attention layers with one token count over the same inputs; "
            f"got (batch, queries, keys) {sorted(shapes)}")


def _one_hot(rows: torch.Tensor) -> torch.Tensor:
    """(n, K) -> (n,) bool: all of a row's mass on one key."""
    mag = torch.nan_to_num(rows.abs())
    return mag.amax(-1) >= (1 - 1e-6) * mag.sum(-1).clamp_min(1e-300)


def _warn_degenerate(full: torch.Tensor, degenerate: list[int], layout: Layout, index: int,
                     causal: bool, n: int) -> None:
    b = index if index in degenerate else degenerate[0]
    j = int(torch.nan_to_num(full[b].abs()).argmax())
    first = j == (0 if layout.mask is None else int(layout.mask[b].long().argmax()))
    why = ("a causal model's first token attends only to itself" if causal and first
           else "the token attends only to itself through every layer")
    shown = f", including input {index} (the map shown)" if index in degenerate else ""
    default = ", the default for causal models" if causal else ""
    warnings.warn(
        f"attention rollout: the query token's row is one-hot (all on token {j}) in "
        f"{len(degenerate)} of {n} inputs{shown}: {why}, so the row says nothing about the "
        f"other tokens; choose another token with query= (-1 = the last real token{default})",
        UserWarning, stacklevel=5)


def rollout_summary(maps: list[AttentionMap], layers: list[LayerAttention], *, n: int,
                    layout: Layout, index: int, query: torch.Tensor, causal: bool,
                    policy: str | None, head_fusion: str, discard_ratio: float,
                    residual: float) -> dict[str, Any]:
    """The rollout row of the query token of every input (``map`` for ``index``, ``mean_map``),
    with a warning when the row of input ``index`` (or of others) is one-hot."""
    if policy is None and not all(m.softmax for m in maps):
        bad = [lay for lay in layers if not lay.softmax]
        raise OptionError(
            f"layers {[lay.name for lay in bad]} are not softmax attention (negative mass up to "
            f"{max(float(np.nanmax(lay.negative_mass)) for lay in bad):.3g}, mean |row sum - 1| "
            f"up to {max(float(np.nanmax(lay.row_sum_deviation)) for lay in bad):.3g}); rollout "
            f"needs an explicit policy: one of {POLICIES} (or rollout=False)")
    r = rollout_fn([m.weights.double() for m in maps], softmax=[m.softmax for m in maps],
                   policy=policy, head_fusion=head_fusion, discard_ratio=discard_ratio,
                   residual=residual, query=query)
    full = r[torch.arange(n), query]  # (n, N): the query row of every input
    degenerate = [int(b) for b in torch.nonzero(_one_hot(full)).reshape(-1)]
    q = int(query[index])
    if degenerate:
        _warn_degenerate(full, degenerate, layout, index, causal, n)
    if layout.mask is not None and not bool(layout.mask[index, q]):
        warnings.warn(f"attention rollout: query token {q} of input {index} is padding "
                      "(attention_mask == 0); choose a real token with query=", UserWarning,
                      stacklevel=4)
    row = full[:, layout.prefix:]
    if layout.grid is not None:
        row = row.reshape(n, *layout.grid)
    return {"policy": policy, "softmax": all(m.softmax for m in maps),
            "head_fusion": head_fusion, "discard_ratio": discard_ratio, "residual": residual,
            "query": [int(v) for v in query], "reading": describe(layout.kind, causal, q),
            "degenerate": degenerate, "layers": [m.name for m in maps],
            "map": row[index].numpy(), "mean_map": row.mean(0).numpy()}
