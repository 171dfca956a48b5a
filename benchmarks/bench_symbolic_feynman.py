"""Exact formula recovery: pykan 0.2.8's default pipeline vs ``analyses.symbolic.discover``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_symbolic_feynman.py [--tool pykan|ours|both]
[--only NAME ...] [--out results.jsonl]`` from the repository root.

Fixed set (``inspect_kit.data.FORMULAS``, 1000 noise-free training points drawn with seed 0 on
the AI Feynman ranges): the pykan README formula and seven Feynman-style equations.

* pykan (the reference study's "default pipeline", /work/shared/reference/pykan.md §3b):
  ``KAN([d, 5, 1], grid=5, k=3, seed=0)``, ``fit(opt="LBFGS", steps=40, lamb=1e-3)``,
  ``prune()``, fit 40 steps, ``auto_symbolic()`` (its defaults: full library, weight_simple 0.8),
  fit 40 steps (affine parameters), ``symbolic_formula()``.
* ours: ``discover(formula:NAME, seed=0)`` at its defaults (zoo KAN [d, 5, 1], grid 5, 40 L-BFGS
  steps with lamb 1e-3, prune 0.01, 20 steps, grid 10, 20 steps, then ``symbolic``: edge route and
  separability route, refit, snapping, simplification).

Exact = the formula agrees with the truth to 1e-8 * max(1, max|truth|) on 256 seeded points of the
data box (``analyses.symbolic.formula.exact_match``), the same check for both tools. pykan works
in float32 (its pi is 3.14159274), so its formula is checked three ways and counted exact if any
passes: as returned, after its own ``ex_round(formula, 4)``, and after *our* constant snapping
(refit to pykan's network, ``snap`` against the data, refit, simplify: the same post-processing
our formulas get). A pykan exception is recorded as not exact, with the message. Each finished
equation is appended to ``--out`` as one JSON line (a rerun skips what is there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

SET = ["exp_sin", "gaussian", "product", "ratio", "hypot", "feynman_I_14_3", "feynman_II_3_24",
       "feynman_I_6_20"]


def run_pykan(name: str, dtype: str = "float32") -> dict:
    import sympy
    from kan import KAN

    from analyses.symbolic import formula as fm
    from inspect_kit.data import load_data

    b = load_data(f"formula:{name}", seed=0)
    ds = {"train_input": b.x_train.float(), "train_label": b.y_train.float().reshape(-1, 1),
          "test_input": b.x_test.float(), "test_label": b.y_test.float().reshape(-1, 1)}
    if dtype == "float64":
        ds = {k: v.double() for k, v in ds.items()}
        torch.set_default_dtype(torch.float64)
    d = ds["train_input"].shape[1]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = KAN(width=[d, 5, 1], grid=5, k=3, seed=0, ckpt_path=tmp, auto_save=False)
        model.fit(ds, opt="LBFGS", steps=40, lamb=1e-3, log=1000)
        model = model.prune()
        model.fit(ds, opt="LBFGS", steps=40, log=1000)
        model(ds["train_input"])
        t_sym = time.perf_counter()
        model.auto_symbolic(verbose=0)
        t_sym = time.perf_counter() - t_sym
        model.fit(ds, opt="LBFGS", steps=40, log=1000)
        expr = model.symbolic_formula()[0][0]
        with torch.no_grad():
            y_net = model(ds["train_input"]).double().reshape(-1)
    total = time.perf_counter() - t0
    syms = fm.input_symbols(d)
    expr = expr.xreplace({s: syms[int(str(s).split("_")[1]) - 1] for s in expr.free_symbols})
    X = b.x_train.double()
    y = b.y_train.double().reshape(-1)
    box = np.stack([X.min(0).values.numpy(), X.max(0).values.numpy()], 1)
    variants = {"raw": expr, "ex_round4": ex_round(expr, 4), "our_snap": our_snapping(expr, syms, X, y,
                                                                                     y_net)}
    torch.set_default_dtype(torch.float32)
    out = {"tool": "pykan" if dtype == "float32" else "pykan-float64", "formula": name,
           "truth": b.truth, "found": str(sympy.N(expr, 6)),
           "auto_symbolic_s": t_sym, "total_s": total}
    for key, e in variants.items():
        chk = fm.exact_match(e, b.truth, syms, box, seed=0)
        with np.errstate(all="ignore"):
            r2 = fm.r2_score(fm.evaluate(e, syms, X), y)
        out[key] = {"formula": str(sympy.N(e, 6)), "exact": chk["exact"], "r2_data": r2}
    out["exact"] = any(v["exact"] for v in out.values() if isinstance(v, dict))
    out["r2_data"] = out["raw"]["r2_data"]
    return out


def ex_round(expr, digits: int):
    from kan.utils import ex_round as kan_ex_round

    return kan_ex_round(expr, digits)


def our_snapping(expr, syms, X: torch.Tensor, y: torch.Tensor, y_net: torch.Tensor):
    """The post-processing :func:`analyses.symbolic.symbolic` applies to its own formulas:
    refit to the network, then :func:`analyses.symbolic.formula.polish` (snap, refit, simplify)."""
    from analyses.symbolic import formula as fm

    sub = torch.linspace(0, len(X) - 1, 512).round().long().unique()
    e = fm.refit(fm.numeric(expr), syms, X[sub], y_net[sub], steps=60)
    return fm.polish(e, syms, X[sub], y_net[sub], y[sub], X_check=X)[0]


def run_ours(name: str, seed: int = 0) -> dict:
    from analyses.symbolic.api import discover

    t0 = time.perf_counter()
    res, _ = discover(f"formula:{name}", seed=seed, progress=False)
    route = res.details["routes"][0]["chosen"]
    return {"tool": "inspect-kit", "formula": name, "truth": res.details["exact_check"]["truth"],
            "found": res.formula, "exact": res.exact, "r2_data": res.formula_r2_data,
            "route": route, "symbolic_s": res.seconds, "total_s": time.perf_counter() - t0,
            "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=["pykan", "ours", "both"], default="both")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default="/tmp/bench_symbolic_feynman.jsonl")
    ap.add_argument("--seed", type=int, default=0, help="seed of ours (data, init, training)")
    ap.add_argument("--pykan-dtype", choices=["float32", "float64"], default="float32",
                    help="float64: a variant run (tool 'pykan-float64'), e.g. where float32 crashed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["tool"], r["formula"]) for r in map(json.loads, f)}
    pk = "pykan" if args.pykan_dtype == "float32" else "pykan-float64"
    tools = ["inspect-kit", pk] if args.tool == "both" else (
        [pk] if args.tool == "pykan" else ["inspect-kit"])
    for name in args.only or SET:
        for tool in tools:
            if (tool, name) in done:
                continue
            try:
                row = (run_ours(name, args.seed) if tool == "inspect-kit"
                       else run_pykan(name, args.pykan_dtype))
            except Exception as err:  # a crash of either tool is a result, not a benchmark failure
                row = {"tool": tool, "formula": name, "exact": False,
                       "error": f"{type(err).__name__}: {err}"[:300]}
            finally:
                torch.set_default_dtype(torch.float32)  # pykan's float64 variant sets it
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    with open(args.out) as f:
        rows = [json.loads(line) for line in f]
    for tool in tools:
        rs = [r for r in rows if r["tool"] == tool]
        print(f"{tool}: exact {sum(bool(r['exact']) for r in rs)}/{len(rs)}", flush=True)


if __name__ == "__main__":
    main()
