"""Attention capture and rollout: cost of ours vs the usual recipes, same model and data.

In one process, methods interleaved round-robin, best of ``--repeats`` (2 shared CPU cores, so
only ratios are meaningful):

1. **timm-style ViT with fused attention** (``F.scaled_dot_product_attention``; depth 4, dim 64,
   4 heads, 65 tokens, batch 64): plain fused forward; our ``capture_attention`` (SDPA patch,
   fused kernel kept, weights recomputed); the usual fix for vit-explain issue #23, flipping every
   block to the explicit path (``fused_attn=False``) and hooking ``attn_drop``.
2. **nn.TransformerEncoder** (4 layers, same sizes, eval): plain forward (fused fast path);
   ours (forces ``need_weights``, fast path off for the context).
3. **zoo TinyViT on digits** (batch 256): plain forward vs ours (hooks on ``attn_fn``).
4. **rollout** of 12 layers x 12 heads x 65 tokens for 64 images: ours (batched) vs a
   vit-explain-style loop (one image at a time; written here, with the row normalisation fixed).

Every captured tensor is also checked against the explicit path (max abs error printed).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_attention.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from analyses.attention.rollout import rollout  # noqa: E402
from inspect_kit import zoo  # noqa: E402
from inspect_kit.attention import capture_attention  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402


class TimmAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hd, self.fused_attn = heads, dim // heads, True
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        if self.fused_attn:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            a = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1)).softmax(-1))
            o = a @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = TimmAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TimmViT(nn.Module):
    def __init__(self, depth: int = 4, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def best_of(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    best = {k: math.inf for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def timm_case(repeats: int) -> list[str]:
    torch.manual_seed(0)
    model = TimmViT().eval()
    x = torch.randn(64, 65, 64)

    def plain() -> object:
        with torch.no_grad():
            return model(x)

    def ours() -> list:
        with torch.no_grad(), capture_attention(model) as rec:
            model(x)
        return [m.weights for m in rec.maps]

    def flag_flip() -> list:
        out: list = []
        attns = [b.attn for b in model.blocks]
        hooks = [a.attn_drop.register_forward_hook(lambda m, i, o: out.append(o)) for a in attns]
        for a in attns:
            a.fused_attn = False
        try:
            with torch.no_grad():
                model(x)
        finally:
            for a in attns:
                a.fused_attn = True
            for h in hooks:
                h.remove()
        return out

    err = max(float((a - b).abs().max()) for a, b in zip(ours(), flag_flip()))
    t = best_of({"plain": plain, "ours": ours, "flag": flag_flip}, repeats)
    return [f"| timm-style ViT, fused SDPA (4 blocks, B=64, N=65) | {t['plain'] * 1e3:.2f} | "
            f"{t['ours'] * 1e3:.2f} ({t['ours'] / t['plain']:.2f}x) | flag flip + attn_drop "
            f"hooks {t['flag'] * 1e3:.2f} ({t['flag'] / t['plain']:.2f}x) | "
            f"{t['ours'] / t['flag']:.2f} | {err:.1e} |"]


def encoder_case(repeats: int) -> list[str]:
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 4,
                                enable_nested_tensor=False).eval()
    x = torch.randn(64, 65, 64)

    def plain() -> object:
        with torch.no_grad():
            return enc(x)

    def ours() -> object:
        with torch.no_grad(), capture_attention(enc) as rec:
            enc(x)
        return rec

    t = best_of({"plain": plain, "ours": ours}, repeats)
    return [f"| nn.TransformerEncoder (4 layers, B=64, N=65), plain = fused fast path | "
            f"{t['plain'] * 1e3:.2f} | {t['ours'] * 1e3:.2f} ({t['ours'] / t['plain']:.2f}x) | "
            "- | - | (tests: 1e-6) |"]


def zoo_case(repeats: int) -> list[str]:
    model = zoo.build("vit").eval()
    x = load_data("digits").x_train[:256]

    def plain() -> object:
        with torch.no_grad():
            return model(x)

    def ours() -> object:
        with torch.no_grad(), capture_attention(model) as rec:
            model(x)
        return rec.maps

    t = best_of({"plain": plain, "ours": ours}, repeats)
    return [f"| zoo TinyViT, digits (B=256, N=17) | {t['plain'] * 1e3:.2f} | "
            f"{t['ours'] * 1e3:.2f} ({t['ours'] / t['plain']:.2f}x) | - | - | (tests: 1e-6) |"]


def loop_rollout(layers: list[torch.Tensor], discard_ratio: float,
                 order: str = "ours") -> torch.Tensor:
    """Rollout one image at a time. ``order="ours"``: normalise rows after discard, then
    0.5 A + 0.5 I (as analyses.attention.rollout); ``"vit-explain"``: (A + I) / 2 on the
    discarded matrix, then normalise rows (vit-explain, with keepdim fixed), which raises the
    identity's share when entries are discarded."""
    out = []
    for b in range(layers[0].shape[0]):
        N = layers[0].shape[-1]
        r = torch.eye(N, dtype=layers[0].dtype)
        for a in layers:
            f = a[b].mean(0)
            flat = f.reshape(-1).clone()
            k = int(flat.numel() * discard_ratio)
            if k:
                mag = flat.abs().clone()
                mag[0] = math.inf
                flat[mag.topk(k, largest=False).indices] = 0
            f = flat.reshape(N, N)
            if order == "ours":  # rows with nothing left become e_i
                s = f.sum(-1, keepdim=True)
                f = torch.where(s > 0, f / s.clamp_min(1e-300), torch.eye(N, dtype=f.dtype))
            f = (f + torch.eye(N, dtype=f.dtype)) / 2
            f = f / f.sum(-1, keepdim=True)
            r = f @ r
        out.append(r)
    return torch.stack(out)


def rollout_case(repeats: int) -> list[str]:
    g = torch.Generator().manual_seed(0)
    layers = [torch.softmax(torch.randn(64, 12, 65, 65, generator=g), -1) for _ in range(12)]
    rows = []
    for ratio in (0.0, 0.9):
        ours = rollout(layers, discard_ratio=ratio)
        err = float((ours - loop_rollout(layers, ratio)).abs().max())
        cls = ours[:, 0, 1:]
        vx = loop_rollout(layers, ratio, "vit-explain")[:, 0, 1:]
        diff = float((cls / cls.amax(-1, keepdim=True) - vx / vx.amax(-1, keepdim=True))
                     .abs().max())
        t = best_of({"ours": lambda r=ratio: rollout(layers, discard_ratio=r),
                     "loop": lambda r=ratio: loop_rollout(layers, r)}, repeats)
        rows.append(f"| rollout 12 layers x 12 heads, N=65, 64 images, discard {ratio} | - | "
                    f"{t['ours'] * 1e3:.1f} | per-image loop {t['loop'] * 1e3:.1f} | "
                    f"{t['ours'] / t['loop']:.2f} | {err:.1e} (vit-explain order: max "
                    f"difference of max-normalised CLS maps {diff:.3f}) |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"# bench_attention  torch {torch.__version__}  {platform.processor() or platform.machine()}"
          f"  threads {torch.get_num_threads()}  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| case | plain ms | ours ms (vs plain) | reference ms (vs plain) | ours / reference "
          "| max abs err |")
    print("|---|---|---|---|---|---|")
    for case in (timm_case, encoder_case, zoo_case, rollout_case):
        for row in case(args.repeats):
            print(row, flush=True)


if __name__ == "__main__":
    main()
