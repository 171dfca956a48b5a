"""ESD on a GPT-2-small-shaped model: this kit's ``esd`` vs WeightWatcher 0.7.7 ``analyze()``.

Model: ``transformers.GPT2LMHeadModel(GPT2Config())`` (vocabulary 50257, 1024 positions, width
768, 12 layers, 12 heads; HF ``Conv1D`` projections), random init from seed 0: every layer has
its own weights. Embeddings are **tied** (the config's default: ``lm_head.weight`` is
``transformer.wte.weight``), 124.4M parameters. ``--heavy-tailed`` replaces every 2-D weight by
Student-t (3 degrees of freedom) entries of the same standard deviation, seeded per matrix, for
heavy-tailed spectra like trained layers'.

Printed, in one process with torch and BLAS pinned to one thread (``pinned_threads(1)``, and run
it with ``OMP_NUM_THREADS=1``):

1. coverage: every matrix one tool analyses and the other does not, with the reason;
2. agreement on WeightWatcher's rows: |delta alpha| and same xmin, ``method="compat"`` (must be
   bit-identical) and ``method="fast"``;
3. timings at both tools' defaults on the same matrices (``esd(model, layers=<WeightWatcher's
   rows>)`` vs ``WeightWatcher(model).analyze()``), interleaved, best of ``--reps``, CPU time
   (``time.process_time``, what the load disturbs least) and wall time, and the ratio. The
   deep copy WeightWatcher gets (its layer iterator writes attributes on modules) is made
   outside the timer. Ours on every row (adds the 50257 x 768 token embedding) is timed too.

Run from the repository root:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_esd_gpt2.py --reps 5
    ... --heavy-tailed
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import math
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from analyses.esd import esd  # noqa: E402
from analyses.esd.api import pinned_threads  # noqa: E402
from analyses.esd.matrices import layer_matrices  # noqa: E402
from analyses.esd.ww_backend import compare_rows, ww_rows  # noqa: E402

WW_MAX_N, WW_MIN_EVALS, WW_MAX_EVALS = 50000, 8, 15000  # WeightWatcher 0.7.7 defaults


def build(heavy_tailed: bool = False, seed: int = 0) -> torch.nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    if heavy_tailed:
        with torch.no_grad():
            for i, (_, p) in enumerate(sorted(model.named_parameters())):
                if p.dim() != 2:
                    continue
                rng = np.random.default_rng(seed + 1000 + i)
                t = rng.standard_t(3.0, size=tuple(p.shape)) / math.sqrt(3.0)  # unit variance
                p.copy_(torch.from_numpy(t).to(p.dtype) * p.std())
    return model


def ww_analyze(model: torch.nn.Module, **kwargs):  # noqa: ANN201
    """WeightWatcher's ``analyze`` on ``model`` as given (pass a copy), silenced."""
    import weightwatcher as ww

    logger = logging.getLogger("weightwatcher")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return ww.WeightWatcher(model=model).analyze(**kwargs)
    finally:
        logger.setLevel(old)


def ww_skip_reason(lm) -> str:  # noqa: ANN001
    """Why WeightWatcher 0.7.7 (defaults) does not analyse a matrix this kit analyses."""
    if lm.ww_type is None:
        return ("not the .weight of a Linear/Conv1d/Conv2d/Embedding module (WeightWatcher reads "
                "only module.weight of those types)")
    if lm.n_rows > WW_MAX_N:
        return f"N = {lm.n_rows} > max_N = {WW_MAX_N} (WeightWatcher skips large vocabularies)"
    if lm.n_evals < WW_MIN_EVALS:
        return f"{lm.n_evals} eigenvalues < min_evals = {WW_MIN_EVALS}"
    if lm.n_evals > WW_MAX_EVALS:
        return f"{lm.n_evals} eigenvalues > max_evals = {WW_MAX_EVALS}"
    return "(no WeightWatcher filter applies)"


def cpu_wall(fn):  # noqa: ANN001, ANN201
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c, time.perf_counter() - t, out


def coverage(model: torch.nn.Module, ww_names: list[str]) -> None:
    ours = esd(model, progress=False, mp_fit=False, n_boot=0, detx=False)
    mats = {lm.name: lm for lm in layer_matrices(model)}
    analysed = {r["name"]: r for r in ours.layers if r["status"] != "skipped"}
    skipped = {r["name"]: r for r in ours.layers if r["status"] == "skipped"}
    only_ours = [n for n in analysed if n not in set(ww_names)]
    only_ww = [n for n in ww_names if n not in analysed]
    print(f"coverage: WeightWatcher analyses {len(ww_names)} matrices, this kit {len(analysed)} "
          f"({len(ours.layers)} rows, {len(skipped)} skipped)")
    for n in only_ours:
        r, lm = analysed[n], mats[n]
        dup = f"; this kit: the same tensor as {r['duplicate_of']} (tied), row copied" \
            if r.get("duplicate_of") else ""
        print(f"  only this kit: {n} {tuple(lm.shape)} [{r['kind']}]: WeightWatcher: "
              f"{ww_skip_reason(lm)}{dup}")
    for n in only_ww:
        reason = skipped[n]["skip_reason"] if n in skipped else "no such row in this kit"
        print(f"  only WeightWatcher: {n}: this kit: {reason}")
    if not only_ours and not only_ww:
        print("  the same matrices")


def agreement(model: torch.nn.Module, theirs: list[dict], ww_names: list[str]) -> None:
    for method in ("compat", "fast"):
        ours = esd(model, method=method, layers=ww_names, progress=False)
        cmp = compare_rows(ours.layers, theirs)
        d = np.array([c["delta_alpha"] for c in cmp], dtype=float)
        same = sum(bool(c["same_xmin"]) for c in cmp)
        exact = int(np.sum(d == 0))
        alphas = np.array([c["alpha_ww"] for c in cmp], dtype=float)
        print(f"  {method:6s}: {len(cmp)} rows, max |delta alpha| = {np.nanmax(d):.2e} "
              f"({exact}/{len(cmp)} bit-identical), same xmin {same}/{len(cmp)}; "
              f"WeightWatcher alpha range {np.nanmin(alphas):.3g}-{np.nanmax(alphas):.3g}")


def race(model: torch.nn.Module, ww_names: list[str], reps: int, all_rows: bool) -> None:
    ww_cpu, ww_wall, our_cpu, our_wall, all_cpu, all_wall = [], [], [], [], [], []
    for rep in range(reps):
        target = copy.deepcopy(model)  # WeightWatcher writes attributes on modules: a copy
        c, w, _ = cpu_wall(lambda t=target: ww_analyze(t))
        ww_cpu.append(c)
        ww_wall.append(w)
        del target
        c, w, _ = cpu_wall(lambda: esd(model, layers=ww_names, progress=False))
        our_cpu.append(c)
        our_wall.append(w)
        if all_rows:
            c, w, res = cpu_wall(lambda: esd(model, progress=False))
            all_cpu.append(c)
            all_wall.append(w)
        print(f"  rep {rep + 1}: WeightWatcher {ww_cpu[-1]:6.2f} s CPU ({ww_wall[-1]:6.2f} s wall)"
              f" | ours {our_cpu[-1]:6.2f} s CPU ({our_wall[-1]:6.2f} s wall)"
              + (f" | ours all rows {all_cpu[-1]:6.2f} s CPU" if all_rows else "")
              + f" | load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"best of {reps}: WeightWatcher {min(ww_cpu):.2f} s CPU / {min(ww_wall):.2f} s wall; "
          f"ours (same {len(ww_names)} matrices) {min(our_cpu):.2f} s CPU / {min(our_wall):.2f} s "
          f"wall -> ratio {min(ww_cpu) / min(our_cpu):.2f}x CPU, "
          f"{min(ww_wall) / min(our_wall):.2f}x wall; median ratio "
          f"{np.median(ww_cpu) / np.median(our_cpu):.2f}x CPU")
    if all_rows:
        print(f"ours on every row: {min(all_cpu):.2f} s CPU / {min(all_wall):.2f} s wall")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--heavy-tailed", action="store_true")
    ap.add_argument("--no-all-rows", action="store_true", help="skip timing ours on every row")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, threads pinned to 1, "
          f"load average {os.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)  # its import logs "no CUDA:
    import weightwatcher  # noqa: F401,E402                           SciPy SVD" (what we want)
    with pinned_threads(1):
        model = build(args.heavy_tailed)
        n = sum(p.numel() for p in model.parameters())
        tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
        print(f"model: GPT2LMHeadModel(GPT2Config()), {n:,} parameters, embeddings "
              f"{'tied' if tied else 'untied'}, "
              f"{'Student-t(3) weights' if args.heavy_tailed else 'GPT-2 random init'}")
        theirs = ww_rows(ww_analyze(copy.deepcopy(model)))
        ww_names = [r["name"] for r in theirs]
        coverage(model, ww_names)
        print("alpha agreement on WeightWatcher's rows:")
        agreement(model, theirs, ww_names)
        print("timings at defaults (interleaved):", flush=True)
        race(model, ww_names, args.reps, not args.no_all_rows)


if __name__ == "__main__":
    main()
