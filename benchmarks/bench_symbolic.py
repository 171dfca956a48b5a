"""Symbolic fitting vs pykan 0.2.8, and exact formula recovery end to end.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_symbolic.py [--quick]`` from the repository root.

Part A (speed, same edges, same library, one process): a zoo KAN is trained on the pykan README
formula exp(sin(pi x1) + x2^2) (our :func:`discover` recipe); its edges are sampled on the 1000
training inputs (x = edge input, y = edge value, exactly what pykan's ``auto_symbolic`` fits).
pykan's ``fit_params`` (the work of ``suggest_symbolic``/``auto_symbolic``: one call per edge x
primitive, 3 zoom rounds of a 101x101 grid) runs once; ours (``fit_edges``) best of 3.
  A1: the pruned net (3 live edges) with pykan's full library (28 distinct: SYMBOLIC_LIB minus
      the duplicates x^0.5, 1/x^0.5 and '0'; cos is our sin family, so we fit 27).
  A2: the unpruned net (15 edges) with the hellokan 10-primitive library.
Reported: time ratio, R^2 (1 - SSE/SST on the same points, recomputed for pykan's a,b,c,d) of
each edge's chosen primitive (pykan: its suggest_symbolic rule without '0'; ours: select.choose)
and, for every (edge, primitive), ours - pykan's.

Part B (exact recovery, seeds and budgets fixed): :func:`discover` (zoo KAN [n,5,1], grid 5,
40 L-BFGS steps with lamb=1e-3, prune 0.01, 20 steps, refine to grid 10, 20 steps, seed 0) on
formula:exp_sin and the Feynman-style set gaussian, product, ratio, hypot. pykan's default
pipeline baseline (reference study, /work/shared/reference/pykan.md §3b): 0/4.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

PYKAN_FULL = ["x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "1/x^3", "1/x^4", "1/x^5", "sqrt",
              "x^1.5", "1/sqrt(x)", "exp", "log", "abs", "sin", "cos", "tan", "tanh", "sgn",
              "arcsin", "arccos", "arctan", "arctanh", "gaussian"]
HELLOKAN = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs"]


def pykan_fits(x: torch.Tensor, y: torch.Tensor, names: list[str]) -> tuple[dict, float]:
    from kan.utils import SYMBOLIC_LIB, fit_params

    out, t0 = {}, time.perf_counter()
    for name in names:
        fn = SYMBOLIC_LIB[name][0]
        (a, b, c, d), r2 = fit_params(x, y, fn, verbose=False)
        with torch.no_grad():
            pred = c * fn(a * x + b) + d
        sse = float(((pred - y) ** 2).sum())
        sst = float(((y - y.mean()) ** 2).sum())
        r2_true = 1 - sse / sst if np.isfinite(sse) else -np.inf
        out[name] = {"params": [float(a), float(b), float(c), float(d)], "r2": r2_true,
                     "r2_pykan": float(r2), "complexity": SYMBOLIC_LIB[name][2]}
    return out, time.perf_counter() - t0


def pykan_choice(fits: dict) -> str:
    """suggest_symbolic's rule (weight_simple=0.8) without '0'."""
    loss = {n: 0.8 * f["complexity"] + 0.2 * np.log2(1 + 1e-5 - max(f["r2_pykan"], 0.0))
            for n, f in fits.items()}
    return min(loss, key=loss.get)


def compare(xs: torch.Tensor, ys: torch.Tensor, names: list[str], reps: int = 3,
            max_edges: int | None = None) -> dict:
    from analyses.symbolic.fit import fit_edges
    from analyses.symbolic.library import ALIASES
    from analyses.symbolic.select import choose

    ours_t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        table = fit_edges(xs, ys, names, x_val=xs, y_val=ys, progress=False)
        ours_t.append(time.perf_counter() - t0)
    picks = choose(table)
    sst = ((ys - ys.mean(1, keepdim=True)) ** 2).sum(1)
    live = (sst > 1e-10).nonzero().flatten().tolist()
    ref_t, rows, deltas, pairs = 0.0, [], [], []
    for e in live[:max_edges]:
        fits, dt = pykan_fits(xs[e], ys[e], names)
        ref_t += dt
        pc = pykan_choice(fits)
        col = table.names.index(ALIASES.get(pc, pc))
        for n, f in fits.items():
            if np.isfinite(f["r2"]) and f["r2_pykan"] > 0:
                ours_r2 = float(table.r2[e, table.names.index(ALIASES.get(n, n))])
                deltas.append(ours_r2 - f["r2"])
                pairs.append({"edge": e, "primitive": n, "ours": ours_r2, "pykan": f["r2"],
                              "pykan_params": f["params"]})
        rows.append({"edge": e, "pykan": pc, "pykan_r2": fits[pc]["r2"],
                     "ours": picks[e]["function"], "ours_r2": picks[e]["r2"],
                     "ours_r2_same_fn": float(table.r2[e, col])})
    n_ref = len(live[:max_edges])
    ours = min(ours_t) * n_ref / len(xs)  # ours fitted all edges at once; scale to those compared
    return {"n_edges": n_ref, "n_primitives": len(names), "pykan_s": ref_t,
            "ours_s_all_edges": min(ours_t), "ours_s_same_edges": ours,
            "ratio": ref_t / ours, "rows": rows, "pairs": pairs,
            "min_delta_r2_all_pairs": min(deltas) if deltas else None,
            "n_pairs": len(deltas), "n_pairs_worse_1e-6": int(sum(d < -1e-6 for d in deltas))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="part A on the pruned net only")
    ap.add_argument("--out", default="/tmp/bench_symbolic.json", help="JSON report path")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--skip-a1", action="store_true", help="part A: only the unpruned net (A2)")
    ap.add_argument("--max-edges", type=int, default=None, help="pykan on the first N edges only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from analyses.symbolic.api import discover
    from inspect_kit.data import load_data
    from inspect_kit.kan.sampling import sample_edges
    from inspect_kit.zoo import build
    from inspect_kit.zoo.kan_recipe import prune as prune_model
    from inspect_kit.zoo.train import fit

    report: dict = {"machine": "2-core CPU shared with other jobs", "date": time.strftime("%Y-%m-%d")}
    if not args.skip_a:
        b = load_data("formula:exp_sin")
        tr = (b.x_train.double(), b.y_train.double())
        m = build("kan", width=[2, 5, 1], grid=5, k=3, seed=0).double()
        fit(m, tr, epochs=40, optimizer="lbfgs", lr=1.0, grid_update_every=5, seed=0, progress=False,
            regularizer=lambda mm, x: 1e-3 * mm.regularization(x, 1.0, 2.0, metric="std_n"))
        pruned = prune_model(m, tr, 0.01)
        fit(pruned, tr, epochs=20, optimizer="lbfgs", lr=1.0, seed=0, progress=False)
        s_pr = sample_edges(pruned, tr)
        live = (~s_pr.masked).nonzero().flatten()
        if not args.skip_a1:
            report["A1_pruned_full_library"] = compare(s_pr.x_obs[live].double(),
                                                       s_pr.y_obs[live].double(), PYKAN_FULL,
                                                       max_edges=args.max_edges)
            print(json.dumps(report["A1_pruned_full_library"], indent=1), flush=True)
        if not args.quick:
            s_un = sample_edges(m, tr)
            report["A2_unpruned_hellokan_library"] = compare(s_un.x_obs.double(),
                                                             s_un.y_obs.double(), HELLOKAN,
                                                             max_edges=args.max_edges)
            print(json.dumps(report["A2_unpruned_hellokan_library"], indent=1), flush=True)
    if not args.skip_b:
        rec = []
        for name in ["exp_sin", "gaussian", "product", "ratio", "hypot"]:
            t0 = time.perf_counter()
            res, _ = discover(f"formula:{name}", seed=0, progress=False)
            row = {"formula": name, "truth": res.details["exact_check"]["truth"],
                   "found": res.formula, "exact": res.exact, "r2_model": res.formula_r2_model,
                   "r2_data": res.formula_r2_data, "symbolic_s": res.seconds,
                   "total_s": time.perf_counter() - t0}
            rec.append(row)
            print(json.dumps(row), flush=True)
        report["B_recovery"] = rec
        feyn = [r for r in rec if r["formula"] != "exp_sin"]
        report["B_summary"] = {"readme_exact": rec[0]["exact"],
                               "feynman_exact": f"{sum(bool(r['exact']) for r in feyn)}/{len(feyn)}",
                               "pykan_default_baseline": "0/4 (reference study)"}
        print(json.dumps(report["B_summary"]), flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
