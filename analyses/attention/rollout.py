"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
arXiv 2005.00928), batched, with head fusion, discard ratio and explicit policies for
attention that is not a softmax (Fourier-KArAt, linear attention).

Per layer l with attention A_l (B, H, N, N):

0. rows that are not finite (a query with every key masked, e.g. padding under SDPA) become e_i:
   such a token keeps its own signal and passes nothing to the real tokens.
1. **policy**, per head: ``raw`` and ``renormalise`` keep A; ``clamp`` takes max(A, 0) (what the
   KArAt paper's plots do: "ignore the negative values"); ``abs`` takes |A|.
2. **head fusion**: mean, max or min over heads -> Ā (B, N, N).
3. **discard**: per sample, the ``discard_ratio`` fraction of the N^2 entries with the smallest
   |Ā| is set to 0, never the query's own entry (q, q) (CLS->CLS for the default q = 0; flat
   index ``q * (N + 1)``). vit-explain drops flat index 0 from the selection instead, discarding
   one entry fewer when it was chosen.
4. **row normalisation** (all policies except ``raw``): Ā_i <- Ā_i / sum_k |Ā_ik|; a row with
   nothing left (all zero after discard or clamp) becomes e_i, i.e. the token keeps its own
   signal (vit-explain gets the same by renormalising (Ā + I)/2). For a softmax attention
   without discard the rows already sum to one.
5. **residual**: Â = (1 - alpha) Ā + alpha I with alpha = ``residual`` = 0.5 by default, the
   0.5 A + 0.5 I of Abnar & Zuidema (the skip connection carries half of the signal). With
   discard, vit-explain adds I to the discarded matrix *before* renormalising, so the identity's
   share grows with the discard ratio; here it stays alpha. The two orders agree without discard
   and differ by up to 0.70 in max-normalised CLS maps at discard 0.9 on random softmax
   attention (``benchmarks/bench_attention.py``).
6. **accumulate**: R <- Â_l R, starting from R = I, so R = Â_L ... Â_1.

For softmax attention ``clamp``, ``abs`` and ``renormalise`` are identical to the standard
algorithm (and ``raw`` too when ``discard_ratio = 0``); vit-explain's ``a / a.sum(dim=-1)``
without ``keepdim`` normalises columns instead (its issue #16). For non-softmax attention there is
no standard answer, so a policy must be named (``OptionError`` otherwise): in a Fourier-KArAt
re-implementation clamping alone changed the map to Pearson 0.05 against the raw rollout.

The map is the row R[q] of the query token q: how much of each input token reaches token q.
For a causal model only tokens <= q can, and the first token's row is e_0 whatever the weights
(it attends only to itself), so the analysis warns about one-hot rows and picks the last real
token of a causal model by default (:mod:`analyses.attention.layout`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from inspect_kit.errors import OptionError

POLICIES = ("raw", "clamp", "abs", "renormalise")
HEAD_FUSIONS = ("mean", "max", "min")


def check_options(policy: str | None, head_fusion: str, discard_ratio: float,
                  residual: float) -> None:
    """Raise :class:`OptionError` naming the bad rollout option and the allowed values."""
    if policy is not None and policy not in POLICIES:
        raise OptionError(f"policy must be one of {POLICIES} (or None for softmax attention), "
                          f"got {policy!r}")
    if head_fusion not in HEAD_FUSIONS:
        raise OptionError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if not 0.0 <= float(discard_ratio) < 1.0:
        raise OptionError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if not 0.0 <= float(residual) <= 1.0:
        raise OptionError(f"residual must be in [0, 1], got {residual}")


def apply_policy(a: torch.Tensor, policy: str) -> torch.Tensor:
    """Step 1: the per-head transform of ``policy`` (see module docstring)."""
    if policy == "clamp":
        return a.clamp_min(0)
    if policy == "abs":
        return a.abs()
    return a


def fuse_heads(a: torch.Tensor, how: str) -> torch.Tensor:
    """Step 2: ``(B, H, N, N) -> (B, N, N)`` by mean, max or min over heads."""
    if how == "mean":
        return a.mean(1)
    if how == "max":
        return a.amax(1)
    return a.amin(1)


def _per_sample(query: int | Sequence[int] | torch.Tensor, B: int) -> torch.Tensor:
    q = torch.as_tensor(query, dtype=torch.long).reshape(-1)
    return q.expand(B) if q.numel() == 1 else q


def discard(a: torch.Tensor, ratio: float, query: int | Sequence[int] | torch.Tensor = 0
            ) -> torch.Tensor:
    """Step 3: zero the ``ratio`` fraction of smallest-|a| entries per sample, keeping the
    query's own entry (q, q) (``query``: one position or one per sample)."""
    B, N, _ = a.shape
    k = int(N * N * ratio)
    if k == 0:
        return a
    mag = a.abs().reshape(B, N * N).clone()
    mag[torch.arange(B, device=a.device), _per_sample(query, B).to(a.device) * (N + 1)] = \
        float("inf")
    idx = mag.topk(k, dim=-1, largest=False).indices
    out = a.reshape(B, N * N).clone()
    out.scatter_(1, idx, 0.0)
    return out.reshape(B, N, N)


def finite_rows(a: torch.Tensor) -> torch.Tensor:
    """Step 0: rows with a non-finite entry become e_i."""
    ok = torch.isfinite(a).all(-1, keepdim=True)
    if bool(ok.all()):
        return a
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.where(ok, a, eye)


def normalise_rows(a: torch.Tensor) -> torch.Tensor:
    """Step 4: divide each row by its absolute sum; all-zero rows become e_i."""
    s = a.abs().sum(-1, keepdim=True)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.where(s > 0, a / s.clamp_min(torch.finfo(a.dtype).tiny), eye)


def rollout(
    layers: Sequence[torch.Tensor],
    *,
    softmax: bool | Sequence[bool] = True,
    policy: str | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    residual: float = 0.5,
    query: int | Sequence[int] | torch.Tensor = 0,
    cls_index: int | None = None,
) -> torch.Tensor:
    """Rollout ``R = Â_L ... Â_1`` (B, N, N) of per-layer attention ``layers`` (each (B, H, N, N)).

    ``softmax`` says (per layer or for all) whether the weights are a softmax; when any layer is
    not, ``policy`` must be given. ``query`` (one position or one per sample) is the token whose
    (q, q) entry discard keeps; ``R[b, q_b, prefix:]`` is its rollout map (the usual CLS map for
    q = 0). ``cls_index`` is the deprecated name of ``query``.

    >>> u = torch.full((1, 1, 3, 3), 1 / 3)
    >>> r = rollout([u, u])   # (U/2 + I/2)^2 = U + (I - U)/4 for the uniform U
    >>> torch.allclose(r[0], torch.full((3, 3), 1 / 3) + (torch.eye(3) - 1 / 3) / 4)
    True
    """
    if cls_index is not None:
        warnings.warn("rollout(cls_index=...) is deprecated and will be removed; use query=...",
                      FutureWarning, stacklevel=2)
        query = cls_index
    check_options(policy, head_fusion, discard_ratio, residual)
    if not layers:
        raise OptionError("rollout needs at least one attention layer")
    flags = [bool(softmax)] * len(layers) if isinstance(softmax, bool) else list(softmax)
    if len(flags) != len(layers):
        raise OptionError(f"softmax has {len(flags)} flags for {len(layers)} layers")
    if policy is None and not all(flags):
        raise OptionError(
            "attention that is not a softmax (negative entries, rows not summing to 1) has no "
            f"standard rollout; pass policy= one of {POLICIES}")
    shape = layers[0].shape
    for a in layers:
        if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape[0] != shape[0] \
                or a.shape[-1] != shape[-1]:
            raise OptionError("rollout needs self-attention layers (B, H, N, N) with one N and B; "
                              f"got shapes {[tuple(x.shape) for x in layers]}")
    pol = policy or "renormalise"
    B, _, N, _ = shape
    eye = torch.eye(N, dtype=layers[0].dtype, device=layers[0].device)
    r = eye.expand(B, N, N).clone()
    for a in layers:
        f = fuse_heads(apply_policy(finite_rows(a.to(r.dtype)), pol), head_fusion)
        if discard_ratio > 0:
            f = discard(f, discard_ratio, query)
        if pol != "raw":
            f = normalise_rows(f)
        r = ((1.0 - residual) * f + residual * eye) @ r
    return r
