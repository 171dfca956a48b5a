"""Intrinsic dimension of the digits MLP: d_int90 with both baselines over three seeds, Fastfood
and dense projections.

Run:  OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_intrinsic_dimension.py [--seeds 0 1 2]

Model: the zoo MLP 64-128-128-10 (26,122 parameters) at its initialisation from seed s (theta_0);
data: scikit-learn digits (1,437 training / 360 test images, standardised). For each seed s the
full model is trained directly (Adam lr 1e-3, batches of 64, 10 epochs) and random-subspace
training (Adam lr 0.05 on z, same batches and epochs) runs on the grid d = 16, 32, ..., 2048
with 3 bisection steps per threshold; the projection and the batch order are drawn from s.

Reported per seed and projection: full and chance test accuracy, d_int90 for
  relative: acc(d) >= 0.9 acc_full                      (Li et al. 2018)
  gap:      acc(d) >= acc_chance + 0.9 (acc_full - acc_chance)
with the final bracket (d_lo, d_hi] of each, and the spread (max/min) over seeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from analyses.intrinsic_dimension import intrinsic_dimension  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.zoo import build  # noqa: E402

DIMS = [16, 32, 64, 128, 256, 512, 1024, 2048]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--projections", nargs="+", default=["fastfood", "dense"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--refine", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_data("digits")
    print(f"# {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()},"
          f" load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    print("| projection | seed | full acc | chance | d_int90 relative (bracket) | d_int90 gap "
          "(bracket) | runs | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    found: dict[str, dict[str, list[int]]] = {}
    for proj in args.projections:
        for s in args.seeds:
            model = build("mlp", sizes=(64, 128, 128, 10), seed=s)
            t = time.perf_counter()
            r = intrinsic_dimension(model, data, dims=DIMS, projection=proj, epochs=args.epochs,
                                    refine=args.refine, seed=s, progress=False)
            minutes = (time.perf_counter() - t) / 60
            for k, v in r.d_int90.items():
                found.setdefault(proj, {}).setdefault(k, []).append(v)
            print(f"| {proj} | {s} | {r.full_accuracy:.4f} | {r.chance_accuracy:.4f} | "
                  f"{r.d_int90['relative']} {r.brackets['relative']} | {r.d_int90['gap']} "
                  f"{r.brackets['gap']} | {len(r.dims)} | {minutes:.1f} |", flush=True)
            print("    accuracy by d: " + ", ".join(f"{d}: {a:.3f}"
                                                   for d, a in zip(r.dims, r.accuracy)),
                  flush=True)
    print("\n| projection | baseline | d_int90 over seeds | spread max/min |")
    print("|---|---|---|---|")
    for proj, by in found.items():
        for k, vals in by.items():
            ok = [v for v in vals if v is not None]
            spread = f"{max(ok) / min(ok):.2f}" if ok else "n/a"
            print(f"| {proj} | {k} | {vals} | {spread} |")


if __name__ == "__main__":
    main()
