"""A tiny Vision Transformer (Dosovitskiy et al. 2021, arXiv 2010.11929) for 8x8 digits, with
softmax attention or a simplified Fourier Kolmogorov-Arnold attention (KArAt, Maity et al. 2025,
arXiv 2503.10632).

Layout (timm-like): non-overlapping ``patch_size`` patches in row-major order, flattened and
embedded by ``patch_embed`` (a Linear), a CLS token, learned position embeddings, ``depth``
pre-norm blocks ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``, a final LayerNorm and a linear head
on the CLS token. Attention computes ``scores = (q @ k^T) * head_dim^-0.5`` and then calls its
``attn_fn`` submodule with the scores as the only positional input, so a forward hook on
``*.attn_fn`` sees scores (input) and attention weights (output).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelSpecError

ATTENTIONS = ("softmax", "fourier_karat")


class SoftmaxScores(nn.Module):
    """Row softmax of the scores: ``w = softmax(s, dim=-1)``."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.softmax(s, dim=-1)


class FourierKArAt(nn.Module):
    """Learnable per-head univariate function of the scores, applied elementwise:

        phi_h(s) = sum_{g=1..G} a[h, g] cos(g s) + b[h, g] sin(g s),   coef[h] = (a[h], b[h]).

    A simplified, element-wise Fourier-KArAt (Maity et al. 2025, arXiv 2503.10632): Fourier basis
    with grid size G, base function b(x) = 0, and *no* l1 projection onto the simplex, so weights
    can be negative and rows need not sum to 1 (intended). The paper's operator mixes all N scores
    of a row; here each weight depends on its own score only.

    Initialisation: ``b[h, g] = 0.25 * (-1)^(g+1) * 2/g`` (the truncated Fourier series of the
    sawtooth, i.e. ``phi_h(s) ~ 0.25 s`` on (-pi, pi)) and ``a = 0``, plus ``U(-0.01, 0.01)``
    noise from the model's generator. The start is a monotone increasing function of the score
    on (-2.3, 2.3) for G = 3 ((-pi/2, pi/2) for G = 1; larger scores get larger weights, as with
    softmax), bounded by |phi_h| < 0.75 (G = 3; < 0.85 for G <= 8), small enough that the residual
    stream dominates early training.
    """

    def __init__(self, heads: int, grid: int = 3, *, generator: torch.Generator | None = None):
        super().__init__()
        if int(grid) < 1:
            raise ModelSpecError(f"karat_grid must be >= 1, got {grid}")
        self.heads, self.grid = int(heads), int(grid)
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        order = torch.arange(1, self.grid + 1, dtype=torch.float32)
        coef = torch.zeros(self.heads, 2, self.grid)
        coef[:, 1] = 0.25 * 2 * (-1.0) ** (order + 1) / order
        coef += (torch.rand(coef.shape, generator=g) * 2 - 1) * 0.01
        self.coef = nn.Parameter(coef)
        self.register_buffer("orders", order, persistent=False)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, grid={self.grid}"

    def _eval(self, s: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        # s (..., ) with coef broadcast over (..., 2, G) trailing dims
        gs = s.unsqueeze(-1) * self.orders
        return (coef[..., 0, :] * torch.cos(gs) + coef[..., 1, :] * torch.sin(gs)).sum(-1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """``s (B, H, N, N)`` -> weights of the same shape."""
        if s.dim() != 4 or s.shape[1] != self.heads:
            raise ModelSpecError(f"FourierKArAt expects scores (B, {self.heads}, N, N), "
                                 f"got {tuple(s.shape)}")
        return self._eval(s, self.coef[None, :, None, None])

    def function(self, head: int, s: torch.Tensor) -> torch.Tensor:
        """Head ``head``'s univariate function ``phi_head`` evaluated elementwise on ``s``."""
        if not 0 <= int(head) < self.heads:
            raise ModelSpecError(f"head must be in [0, {self.heads}), got {head}")
        return self._eval(s, self.coef[int(head)])


class Attention(nn.Module):
    """Multi-head self-attention with a pluggable score -> weight map ``attn_fn``."""

    def __init__(self, dim: int, heads: int, attn_fn: nn.Module) -> None:
        super().__init__()
        if dim % heads:
            raise ModelSpecError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_fn = attn_fn
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, N, hd)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, N, N)
        weights = self.attn_fn(scores)
        out = (weights @ v).transpose(1, 2).reshape(B, N, self.dim)
        return self.proj(out)


class Mlp(nn.Module):
    """Transformer feed-forward: ``fc2(GELU(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, attn_fn: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, attn_fn)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """ViT for small images: accepts ``(B, C*H*W)`` flat or ``(B, C, H, W)``; returns logits.

    Weights: Linear layers ``trunc_normal(std=0.02)`` with zero bias, ``cls_token`` and
    ``pos_embed`` ``normal(std=0.02)``, LayerNorms (1, 0), all drawn from a local
    ``torch.Generator(seed)`` (the global RNG is left as it was).
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        in_chans: int = 1,
        num_classes: int = 10,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        attention: str = "softmax",
        karat_grid: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ModelSpecError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if image_size % patch_size:
            raise ModelSpecError(f"patch_size ({patch_size}) must divide image_size ({image_size})")
        self.image_size, self.patch_size, self.in_chans = image_size, patch_size, in_chans
        self.attention = attention
        side = image_size // patch_size
        self.grid_shape = (side, side)
        self.n_patches = side * side
        g = torch.Generator().manual_seed(int(seed))

        def attn_fn() -> nn.Module:
            if attention == "softmax":
                return SoftmaxScores()
            return FourierKArAt(heads, karat_grid, generator=g)

        with torch.random.fork_rng(devices=[]):  # default inits draw from the global RNG
            self.patch_embed = nn.Linear(patch_size * patch_size * in_chans, dim)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, self.n_patches + 1, dim))
            self.blocks = nn.ModuleList(
                Block(dim, heads, mlp_ratio, attn_fn()) for _ in range(depth))
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes)
        with torch.no_grad():
            for t in (self.cls_token, self.pos_embed):
                t.normal_(0.0, 0.02, generator=g)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04, generator=g)
                    nn.init.zeros_(m.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C*H*W)`` or ``(B, C, H, W)`` -> ``(B, n_patches, C*p*p)`` in row-major order."""
        C, S, p = self.in_chans, self.image_size, self.patch_size
        if x.numel() != len(x) * C * S * S:
            raise ModelSpecError(f"TinyViT expects images of {C}x{S}x{S} (or {C * S * S} flat "
                                 f"features), got shape {tuple(x.shape)}")
        x = x.reshape(len(x), C, S // p, p, S // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(len(x), self.n_patches, C * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(self.patchify(x))
        cls = self.cls_token.expand(len(x), -1, -1)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(h)[:, 0])

