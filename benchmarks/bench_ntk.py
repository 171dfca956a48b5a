"""Empirical NTK: the automatic method choice against each method, on five shapes.

Run:  OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_ntk.py [--repeats 3] [--calibrate]

For each shape the kernel is computed by Jacobian contraction and by NTK-vector products
(interleaved, best of ``--repeats``, process CPU time and wall time), and ``method="auto"``'s
choice (the cost model of analyses/ntk/cost.py) is compared with the faster of the two:

    ratio = time(auto's choice) / time(faster method)       bar: <= 1.2 on every shape.

``--calibrate`` also prints the effective FLOP rates of the three kinds of work (single-sample
backward passes, BLAS GEMM, forward-mode passes) implied by the timings, which is how
``cost.RATES`` was set. The kernels of the two methods are compared too (max relative
difference, float32).
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
from torch import nn  # noqa: E402

from analyses.ntk import cost  # noqa: E402
from analyses.ntk.chunks import chunks, output_shape, rows  # noqa: E402
from analyses.ntk.contraction import kernel_by_contraction  # noqa: E402
from analyses.ntk.products import kernel_by_products  # noqa: E402
from inspect_kit.view import ModelView  # noqa: E402


class Encoder(nn.Module):
    """A small transformer encoder classifier over token sequences."""

    def __init__(self, vocab: int = 16, dim: int = 32, out: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(x)).mean(1))


def mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def shapes() -> list[tuple[str, nn.Module, torch.Tensor, str]]:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
    return [
        ("MLP 64-256-256-1, N=384, full", mlp([64, 256, 256, 1]), torch.randn(384, 64, generator=g),
         "full"),
        ("MLP 64-128-128-10, N=192, full", mlp([64, 128, 128, 10]),
         torch.randn(192, 64, generator=g), "full"),
        ("MLP 32-256-256-100, N=32, full", mlp([32, 256, 256, 100]),
         torch.randn(32, 32, generator=g), "full"),
        ("CNN 2x conv16 on 8x8, N=96, full", cnn, torch.randn(96, 1, 8, 8, generator=g), "full"),
        ("Encoder d32 L2 T12, N=96, trace", Encoder(),
         torch.randint(0, 16, (96, 12), generator=g), "trace"),
    ]


def timed(fn, *args, **kw) -> tuple[float, float, object]:
    """(wall seconds, process CPU seconds, value) of ``fn(*args, **kw)``."""
    w, c = time.perf_counter(), time.process_time()
    value = fn(*args, **kw)
    return time.perf_counter() - w, time.process_time() - c, value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print("| shape | P | O | auto's choice | contraction CPU s | ntvp CPU s | auto / faster "
          "(CPU) | auto / faster (wall) | predicted c/n | max rel diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rates = []
    for name, model, x, form in shapes():
        view = ModelView(model.eval(), (x,))
        o = 1
        for s in output_shape(view):
            o *= s
        prof = cost.profile(view, o)
        est = cost.estimate(n=len(x), o=o, p=view.n, fp=prof.flops, act=prof.activations,
                            form=form, itemsize=4, budget=2**31)
        auto = cost.choose(est)
        parts = {m: chunks(view, est[m]["chunk"]) for m in ("contraction", "ntvp")}
        best = {m: (float("inf"), float("inf")) for m in ("contraction", "ntvp", "rows")}
        kernels = {}
        small = view.on_batches([b.take(torch.arange(4)) for b in view.batches])
        for fn in (kernel_by_contraction, kernel_by_products):  # warm-up (first-call costs)
            fn(small, chunks(small, 2), form, progress=False)
        for _ in range(args.repeats):
            for m, fn in (("contraction", kernel_by_contraction), ("ntvp", kernel_by_products)):
                wall, cpu, kernels[m] = timed(fn, view, parts[m], form, progress=False)
                best[m] = (min(best[m][0], wall), min(best[m][1], cpu))
            if args.calibrate:
                wall, cpu, _ = timed(lambda v, ps: [rows(v, c) for c in ps], view, parts["ntvp"])
                best["rows"] = (min(best["rows"][0], wall), min(best["rows"][1], cpu))
        diff = float((kernels["contraction"] - kernels["ntvp"]).abs().max()
                     / kernels["contraction"].abs().max())
        fast_cpu = min(best["contraction"][1], best["ntvp"][1])
        fast_wall = min(best["contraction"][0], best["ntvp"][0])
        pred = est["contraction"]["seconds"] / est["ntvp"]["seconds"]
        print(f"| {name} | {view.n} | {o} | {auto} | {best['contraction'][1]:.3f} | "
              f"{best['ntvp'][1]:.3f} | {best[auto][1] / fast_cpu:.2f} | "
              f"{best[auto][0] / fast_wall:.2f} | {pred:.2f} | {diff:.1e} |", flush=True)
        if args.calibrate:
            n = len(x)
            jac = n * o * 3.0 * prof.flops
            t_rows = best["rows"][1]
            gemm = est["contraction"]["flops"] - jac
            jvp = est["ntvp"]["flops"] - jac
            rates.append((name, jac / t_rows, gemm / max(best["contraction"][1] - t_rows, 1e-9),
                          jvp / max(best["ntvp"][1] - t_rows, 1e-9), prof.flops, prof.activations))
            print("RAW", dict(n=n, o=o, p=view.n, fp=prof.flops, act=prof.activations,
                              form=form, c_con=est["contraction"]["chunk"],
                              c_nt=est["ntvp"]["chunk"], t_rows=t_rows,
                              t_con=best["contraction"][1], t_nt=best["ntvp"][1]), flush=True)
    if args.calibrate:
        print("\n| shape | backward FLOP/s | GEMM FLOP/s | jvp FLOP/s | [FP] FLOPs | activations |")
        print("|---|---|---|---|---|---|")
        for name, rb, rg, rj, fp, act in rates:
            print(f"| {name} | {rb:.2e} | {rg:.2e} | {rj:.2e} | {fp:.3g} | {act:.3g} |")


if __name__ == "__main__":
    main()
