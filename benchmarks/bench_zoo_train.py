"""Zoo KAN vs pykan: forward+backward cost and the README training recipe, same weights and data.

In one process, methods interleaved round-robin, best of ``--repeats`` (2 shared CPU cores, so
only ratios are meaningful):

1. **forward+backward** of a [2,5,1] KAN (grid 5, k 3) on 1000 samples: pykan ``MultKAN`` (with
   ``save_act=False``, symbolic branch off, as in its ``fit`` when ``lamb=0``) vs the zoo ``KAN``
   holding the same grids/coefficients/scales (outputs checked equal).
2. **training recipe** on ``formula:exp_sin`` (1000 train / 1000 test points): pykan
   ``fit(opt="LBFGS", steps=20, update_grid=True)`` (its defaults: grid updates every 5 steps)
   vs ``zoo.train.fit(epochs=20, optimizer="lbfgs", lr=1, grid_update_every=5)`` (updates before
   epochs 0 and 5, first half only), both from the same initial weights; test RMSE reported.
3. **MLP on digits** (64-128-128-10, 20 Adam epochs) and **TinyViT on digits** (softmax and
   Fourier-KArAt attention, 30 Adam epochs): seconds and test accuracy (no reference).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_zoo_train.py [--repeats 5]``.
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

from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.zoo.kan import KAN  # noqa: E402
from inspect_kit.zoo.train import fit, train_zoo  # noqa: E402


def pykan_copy(ours: KAN):
    """A pykan MultKAN with the zoo KAN's grids, coefficients, scales, masks and biases."""
    import kan

    theirs = kan.KAN(width=list(ours.width), grid=ours.layers[0].grid_size, k=ours.layers[0].k,
                     seed=0, auto_save=False)
    with torch.no_grad():
        for l, layer in enumerate(ours.layers):
            a = theirs.act_fun[l]
            a.grid.copy_(layer.grid)
            a.coef.copy_(layer.coef.permute(1, 0, 2))
            a.scale_base.copy_(layer.scale_base.T)
            a.scale_sp.copy_(layer.scale_sp.T)
            a.mask.copy_(layer.mask.T)
            theirs.node_bias[l].copy_(layer.bias)
    return theirs


def best_of(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    best = {k: math.inf for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():  # interleaved
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")

    data = load_data("formula:exp_sin")
    x, y = data.x_train, data.y_train
    ours = KAN([2, 5, 1], grid=5, k=3, seed=0)
    theirs = pykan_copy(ours)
    theirs.save_act = False
    theirs.symbolic_enabled = False
    err = (ours(x) - theirs(x)).abs().max().item()

    def fb(model):
        def run():
            model.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
        return run

    t = best_of({"pykan": fb(theirs), "ours": fb(ours)}, args.repeats * 10)
    print(f"forward+backward [2,5,1] x 1000: pykan {t['pykan'] * 1e3:.2f} ms, ours "
          f"{t['ours'] * 1e3:.2f} ms, ratio pykan/ours {t['pykan'] / t['ours']:.2f} "
          f"(max |out diff| {err:.1e})")

    dataset = {"train_input": x, "train_label": y, "test_input": data.x_test,
               "test_label": data.y_test}
    init = {k: v.clone() for k, v in ours.state_dict().items()}
    times: dict[str, list[float]] = {"pykan": [], "ours": []}
    rmse: dict[str, float] = {}
    for _ in range(max(1, args.repeats // 2)):
        m = KAN([2, 5, 1], grid=5, k=3, seed=0)
        m.load_state_dict(init)
        p = pykan_copy(m)
        import numpy as np

        np.random.seed(0)
        t0 = time.perf_counter()
        p.fit(dataset, opt="LBFGS", steps=20, update_grid=True, log=10**9)
        times["pykan"].append(time.perf_counter() - t0)
        with torch.no_grad():
            rmse["pykan"] = ((p(data.x_test) - data.y_test) ** 2).mean().sqrt().item()
        t0 = time.perf_counter()
        res = fit(m, data, epochs=20, optimizer="lbfgs", lr=1.0, grid_update_every=5,
                  progress=False)
        times["ours"].append(time.perf_counter() - t0)
        rmse["ours"] = math.sqrt(res.final["test_loss"])
    tp, to = min(times["pykan"]), min(times["ours"])
    print(f"KAN exp_sin LBFGS 20 steps: pykan {tp:.2f} s (test RMSE {rmse['pykan']:.4f}), ours "
          f"{to:.2f} s (test RMSE {rmse['ours']:.4f}), ratio pykan/ours {tp / to:.2f}")

    _, res = train_zoo("mlp", "digits", progress=False)
    print(f"MLP digits 20 Adam epochs: {res.seconds:.2f} s, test acc {res.final['test_acc']:.4f}")
    for attention in ("softmax", "fourier_karat"):
        _, res = train_zoo("vit", "digits", model_kwargs={"attention": attention}, progress=False)
        print(f"TinyViT ({attention}) digits 30 Adam epochs: {res.seconds:.2f} s, test acc "
              f"{res.final['test_acc']:.4f}")


if __name__ == "__main__":
    main()
