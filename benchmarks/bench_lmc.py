"""LMC benchmark: weight matching (ours) vs the PyPI ``rebasin`` package on the same model pairs.

Two digits MLPs (64-128-128-10, ReLU) per pair, trained from different seeds with the zoo
trainer (Adam, 30 epochs). For every pair, in one process:

* barriers (train/test, loss/error, both definitions) of the plain path, after our weight
  matching, after our activation matching, after rebasin's ``PermutationCoordinateDescent``;
* matching time, best of ``--repeats``, ours and rebasin's interleaved round-robin: ours as
  ``align()`` (trace + match + permuted copy + output check) and the bare coordinate descent;
  rebasin's constructor (torchview tracing) plus ``rebasin()``. rebasin permutes the model it is
  given in place, so it always gets fresh deep copies;
* max |delta logit| between B and its permuted copy (ours and rebasin's).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_lmc.py [--pairs 3] [--repeats 5]``.
Needs ``pip install rebasin`` (not a project dependency); skipped with a message if missing.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analyses.lmc.api import align, lmc  # noqa: E402
from analyses.lmc.permutation import model_state, permutation_spec  # noqa: E402
from analyses.lmc.weight_matching import weight_matching  # noqa: E402
from inspect_kit import zoo  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.zoo.train import fit  # noqa: E402


def _train(seed: int, data, epochs: int) -> torch.nn.Module:
    m = zoo.build("mlp", sizes=(64, 128, 128, 10), seed=seed)
    fit(m, data, epochs=epochs, seed=seed, progress=False)
    return m.eval()


def _rebasin(a, b, x):
    from rebasin import PermutationCoordinateDescent

    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    t0, c0 = time.perf_counter(), time.process_time()
    pcd = PermutationCoordinateDescent(a2, b2, x)
    pcd.rebasin()
    return b2, time.perf_counter() - t0, time.process_time() - c0


def _barriers(res, path: str) -> dict[str, float]:
    c = res.curves[path]
    return {"train_Bmean": c["barrier_mean"]["loss"]["train"],
            "test_Bmean": c["barrier_mean"]["loss"]["test"],
            "test_Blin": c["barrier_linear"]["loss"]["test"],
            "train_err_pp": 100 * c["barrier_mean"]["error"]["train"],
            "test_err_pp": 100 * c["barrier_mean"]["error"]["test"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    try:
        import rebasin  # noqa: F401
    except ImportError:
        print("SKIP: the PyPI package 'rebasin' is not installed (pip install rebasin); it is the "
              "reference for this benchmark and not a project dependency")
        return 0
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = load_data("digits")
    x8 = data.x_train[:8]
    rows = []
    print(f"# bench_lmc  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs  "
          f"{platform.processor() or platform.machine()}  torch {torch.__version__}  "
          f"threads {torch.get_num_threads()}")
    for k in range(args.pairs):
        sa_seed, sb_seed = 2 * k + 1, 2 * k + 2
        a, b = _train(sa_seed, data, args.epochs), _train(sb_seed, data, args.epochs)
        t_ours, t_wm, t_reb, c_ours, c_reb = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved round-robin
            res = align(a, b, "weights", data=data)
            t_ours.append(res.seconds)
            c_ours.append(res.cpu_seconds)
            spec = permutation_spec(a, x8)
            t0 = time.perf_counter()
            weight_matching(spec, model_state(a), model_state(b), restarts=3)
            t_wm.append(time.perf_counter() - t0)
            b_reb, sec, cpu = _rebasin(a, b, x8)
            t_reb.append(sec)
            c_reb.append(cpu)
        with torch.no_grad():
            d_reb = float((b(data.x_train) - b_reb(data.x_train)).abs().max())
        r_w = lmc(a, b, data, matching="weights", repair=True, split="both")
        r_a = lmc(a, b, data, matching="activations", split="both")
        r_r = lmc(a, b_reb, data, split="both")
        row = {"pair": f"({sa_seed},{sb_seed})",
               "none": _barriers(r_w, "naive"), "ours WM": _barriers(r_w, "aligned"),
               "ours WM+REPAIR": _barriers(r_w, "repaired"),
               "ours AM": _barriers(r_a, "aligned"), "rebasin PCD": _barriers(r_r, "naive"),
               "t_align": min(t_ours), "t_wm": min(t_wm), "t_rebasin": min(t_reb),
               "c_align": min(c_ours), "c_rebasin": min(c_reb),
               "dlogit_ours": r_w.aligned["max_abs_delta_logit"], "dlogit_rebasin": d_reb,
               "sweeps": r_w.aligned["sweeps"], "moved": r_w.aligned["fraction_moved"],
               "vr": r_w.repair["variance_ratio"]}
        rows.append(row)
        print(f"\npair {row['pair']}: align() {1e3 * row['t_align']:.1f} ms (bare WM, 3 restarts, "
              f"{1e3 * row['t_wm']:.1f} ms, {row['sweeps']} sweeps), rebasin "
              f"{1e3 * row['t_rebasin']:.1f} ms -> rebasin/ours {row['t_rebasin'] / row['t_align']:.2f}x"
              f" (CPU time: ours {1e3 * row['c_align']:.1f} ms, rebasin {1e3 * row['c_rebasin']:.1f} ms)"
              f"; max|dlogit| ours {row['dlogit_ours']:.1e}, rebasin {d_reb:.1e}; "
              f"moved {100 * row['moved']:.1f}% of params; variance ratio t=0.5 naive->WM "
              f"{row['vr']}")
        print(f"{'path':>15} | train B_mean | test B_mean | test B_lin | train err pp | test err pp")
        for path in ("none", "ours WM", "ours WM+REPAIR", "ours AM", "rebasin PCD"):
            v = row[path]
            print(f"{path:>15} | {v['train_Bmean']:12.4f} | {v['test_Bmean']:11.4f} | "
                  f"{v['test_Blin']:10.4f} | {v['train_err_pp']:12.2f} | {v['test_err_pp']:11.2f}")
    print("\n# mean over pairs")
    for path in ("none", "ours WM", "ours WM+REPAIR", "ours AM", "rebasin PCD"):
        m = {key: np.mean([r[path][key] for r in rows]) for key in rows[0][path]}
        print(f"{path:>15} | " + " | ".join(f"{key} {val:.4f}" for key, val in m.items()))
    ratio = [r["ours WM"]["train_Bmean"] / r["none"]["train_Bmean"] for r in rows]
    speed = ", ".join(f"{r['t_rebasin'] / r['t_align']:.2f}x" for r in rows)
    print(f"\nbars: WM/none train barrier {', '.join(f'{100 * q:.1f}%' for q in ratio)} (bar <= 10%); "
          f"align() max {1e3 * max(r['t_align'] for r in rows):.0f} ms wall, "
          f"{1e3 * max(r['c_align'] for r in rows):.0f} ms CPU (bar < 1000 ms); "
          f"max|dlogit| {max(r['dlogit_ours'] for r in rows):.1e} (bar <= 1e-4); "
          f"ours <= rebasin train barrier: "
          f"{[r['ours WM']['train_Bmean'] <= r['rebasin PCD']['train_Bmean'] + 1e-9 for r in rows]}"
          f"; speed rebasin/ours (min of {args.repeats}): "
          f"{speed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
