"""ESD metrics: this kit's ``analyses.esd.esd`` vs WeightWatcher 0.7.7 ``analyze()``, side by side.

Same models, one process, threads pinned to 1 (torch + threadpoolctl), reference and ours
interleaved, best of N. Models:

* MLP 784-1000-1000-10 trained on sklearn digits upsampled to 28x28 (as the reference study),
* ``nn.TransformerEncoder(d_model=768, nhead=12, dim_feedforward=3072, num_layers=12)`` seed 0,
  with every layer re-initialised independently (so no two tensors are equal and
  deduplication cannot help), and the stock one (deep-copied, identical layers) for dedupe.

Prints: |delta alpha| (compat and fast vs WeightWatcher, same xmin), timings and ratios at
defaults and with MP fit + randomisation + detX.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_esd.py [--small] [--reps 3] [--skip-full]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from analyses.esd import esd  # noqa: E402
from analyses.esd.api import pinned_threads  # noqa: E402
from analyses.esd.ww_backend import compare_rows, run_weightwatcher, ww_rows  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402


def trained_mlp(seed: int = 0, epochs: int = 30) -> nn.Module:
    b = load_data("digits")
    x = torch.as_tensor(b.x_train, dtype=torch.float32).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).reshape(-1, 784)
    y = torch.as_tensor(b.y_train).long()
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(),
                      nn.Linear(1000, 10))
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            F.cross_entropy(m(x[idx]), y[idx]).backward()
            opt.step()
    return m


def encoder(d: int = 768, ff: int = 3072, layers: int = 12, heads: int = 12, seed: int = 0,
            independent: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
    enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    if independent:
        for i, lay in enumerate(enc.layers):
            torch.manual_seed(seed + 1 + i)
            for mod in lay.modules():
                if isinstance(mod, nn.Linear):
                    mod.reset_parameters()
            lay.self_attn._reset_parameters()
    return enc.eval()


def timed(fn):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def agreement(model: nn.Module, label: str) -> None:
    theirs = ww_rows(run_weightwatcher(model))
    for mode in ("compat", "fast"):
        ours = esd(model, mode=mode, progress=False, mp_fit=False, n_boot=0)
        cmp = compare_rows(ours.layers, theirs)
        d = np.array([c["delta_alpha"] for c in cmp])
        same = sum(c["same_xmin"] for c in cmp)
        print(f"  {label:22s} {mode:6s}: {len(cmp)} WW rows, max |delta alpha| = {np.nanmax(d):.2e},"
              f" same xmin {same}/{len(cmp)}")


def race(model: nn.Module, label: str, reps: int, full: bool) -> None:
    """WW analyze() vs ours on the same rows (WW's), each at its defaults; ours on all rows too."""
    ww_names = [r["name"] for r in ww_rows(run_weightwatcher(model))]
    cases = [("defaults", {}, {})]
    if full:
        cases.append(("mp_fit+randomize+detX", dict(mp_fit=True, randomize=True, detX=True),
                      dict(mp_fit=True, randomize=True, detx=True)))
    for case, ww_kw, our_kw in cases:
        n = reps if case == "defaults" else 1
        tw, to, ta = [], [], []
        for _ in range(n):
            tw.append(timed(lambda kw=ww_kw: run_weightwatcher(model, **kw))[0])
            to.append(timed(lambda kw=our_kw: esd(model, progress=False, layers=ww_names,
                                                  **kw))[0])
            ta.append(timed(lambda kw=our_kw: esd(model, progress=False, **kw))[0])
        n_all = len(esd(model, progress=False, mp_fit=False, n_boot=0, detx=False).layers)
        print(f"  {label:24s} {case:22s} WW {min(tw):7.2f} s ({len(ww_names)} rows) | ours "
              f"same rows {min(to):6.2f} s -> {min(tw) / min(to):5.1f}x | ours all {n_all} rows "
              f"{min(ta):6.2f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="4-layer 256/1024 encoder (quick check)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true", help="skip the all-options timing")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads pinned to 1, {time.strftime('%Y-%m-%d %H:%M')}")
    with pinned_threads(1):
        mlp = trained_mlp()
        if args.small:
            enc = encoder(256, 1024, 4, 8)
            enc_stock = encoder(256, 1024, 4, 8, independent=False)
        else:
            enc = encoder()
            enc_stock = encoder(independent=False)
        print("alpha agreement with WeightWatcher 0.7.7 (every row WW analyses):")
        agreement(mlp, "MLP (trained)")
        agreement(enc, "encoder (independent)")
        print("timings (best of N, interleaved):")
        race(mlp, "MLP (trained)", args.reps, not args.skip_full)
        race(enc, "encoder (independent)", args.reps, not args.skip_full)
        race(enc_stock, "encoder (stock: 12 equal layers, dedupe)", 1, False)


if __name__ == "__main__":
    main()
