"""Loss-landscape grid speed: inspect-kit vs PyPI loss-landscapes 3.0.6 vs the naive loop.

Same model (zoo MLP 64-64-64-10 trained on digits), same data (the full digits training split,
1437 samples), same 25 x 25 grid (625 points, full-batch loss per point), one process. The three
methods run interleaved, round-robin, best of ``--repeats`` (absolute times on a shared machine
are noisy; the ratios are what this script reports):

* ``loss-landscapes``: ``random_plane(model, Loss(cross_entropy, X, y), distance=1, steps=25,
  normalization="filter", deepcopy_model=True)`` (loss only; its own U[0, 1) directions);
* ``naive loop``: Li et al.'s procedure: ``load_state_dict(theta + a d1 + b d2)`` on a deep copy,
  forward, loss and accuracy (our directions);
* ``inspect-kit``: ``landscape(model, (X, y), steps=25)`` (defaults: engine "auto", first-layer
  trick), loss and accuracy; plus the fixed engines for information.

Printed per method: best wall-clock ms per point and best process CPU ms per point (CPU time is
far less sensitive to other processes on a shared machine), each with its ratio to ours
(``> 1`` means ours is faster).

It also checks correctness facts of loss-landscapes 3.0.6 on the same model: distance of its
nearest grid point to the trained weights, and how far ``deepcopy_model=False`` moves the model.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_landscape.py`` (and with 2 threads).
Needs ``pip install loss-landscapes==3.0.6`` (not a dependency of the kit); skipped without it.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from analyses.landscape.api import landscape  # noqa: E402
from analyses.landscape.directions import random_directions  # noqa: E402
from inspect_kit import zoo  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.params import flatten, named_params  # noqa: E402
from inspect_kit.zoo.train import fit  # noqa: E402


def naive_loop(model, X, y, dirs, axis):
    net = copy.deepcopy(model).eval()
    theta = named_params(model)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    out_l, out_a = [], []
    for a in axis:
        for b in axis:
            for k in theta:
                sd[k] = theta[k] + a * dirs[0][k] + b * dirs[1][k]
            net.load_state_dict(sd)
            with torch.no_grad():
                out = net(X)
                out_l.append(float(F.cross_entropy(out, y)))
                out_a.append(float((out.argmax(-1) == y).float().mean()))
    return out_l, out_a


def timed(model, label, X, y, steps, repeats, extra):
    import loss_landscapes
    import loss_landscapes.metrics as llm

    n_pts = steps**2
    dirs = random_directions(model, 2, seed=0)
    axis = torch.linspace(-1, 1, steps).tolist()
    print(f"\nmodel: {label} ({flatten(named_params(model)).numel()} params), "
          f"{len(X)} samples, grid {steps}x{steps} = {n_pts} points")

    def run_ll():
        metric = llm.Loss(F.cross_entropy, X, y)
        return loss_landscapes.random_plane(model, metric, distance=1, steps=steps,
                                            normalization="filter", deepcopy_model=True)

    methods = {
        "loss-landscapes 3.0.6": run_ll,
        "naive loop (load_state_dict)": lambda: naive_loop(model, X, y, dirs, axis),
        "inspect-kit landscape (auto)": lambda: landscape(model, (X, y), steps=steps,
                                                          progress=False),
        "inspect-kit, loss only (like l-l)": lambda: landscape(
            model, (X, y), steps=steps, accuracy=False, progress=False),
    }
    if extra:
        methods.update({
            "  engine=loop": lambda: landscape(model, (X, y), steps=steps, engine="loop",
                                               progress=False),
            "  engine=loop, no first-layer trick": lambda: landscape(
                model, (X, y), steps=steps, engine="loop", first_layer_trick=False,
                progress=False),
            "  engine=vmap (chunk 25)": lambda: landscape(model, (X, y), steps=steps,
                                                          engine="vmap", progress=False),
        })
    best = {k: float("inf") for k in methods}
    cpu = {k: float("inf") for k in methods}
    for _ in range(repeats):
        for name, fn in list(methods.items()):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                fn()
            except Exception as exc:  # the reference tool failing on this model is a result
                print(f"{name} FAILED: {type(exc).__name__}: {exc}")
                del methods[name]
                continue
            best[name] = min(best[name], (time.perf_counter() - t0) * 1e3 / n_pts)
            cpu[name] = min(cpu[name], (time.process_time() - c0) * 1e3 / n_pts)
    ours, ours_c = best["inspect-kit landscape (auto)"], cpu["inspect-kit landscape (auto)"]
    print(f"{'method':40s} {'wall ms/pt':>10s} {'ratio':>6s} {'CPU ms/pt':>10s} {'ratio':>6s}")
    for name in methods:
        if best[name] == float("inf"):
            continue
        print(f"{name:40s} {best[name]:10.3f} {best[name] / ours:5.2f}x "
              f"{cpu[name]:10.3f} {cpu[name] / ours_c:5.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--others", default="vit,kan", help="other zoo models to time ('' = none)")
    ap.add_argument("--others-steps", type=int, default=9)
    args = ap.parse_args()
    try:
        import loss_landscapes
        import loss_landscapes.metrics as llm
    except ImportError:
        print("SKIP: loss-landscapes is not installed (pip install loss-landscapes==3.0.6)")
        return 0

    torch.manual_seed(0)
    data = load_data("digits")
    X, y = data.x_train, data.y_train
    model = zoo.build("mlp", sizes=(64, 64, 64, 10))
    fit(model, data, epochs=args.epochs, progress=False)
    model.eval()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"load={os.getloadavg()[0]:.1f}")
    timed(model, "MLP 64-64-64-10", X, y, args.steps, args.repeats, extra=True)
    for name, kw in (("vit", {"attention": "fourier_karat"}), ("kan", {"width": [64, 8, 10]})):
        if name in args.others.split(","):
            other = zoo.build(name, **kw).eval()
            timed(other, f"zoo {name} {kw} (untrained)", X, y, args.others_steps,
                  args.repeats, extra=False)
    dirs = random_directions(model, 2, seed=0)

    # correctness: ours vs naive, and loss-landscapes' centre / side effect
    res = landscape(model, (X, y), steps=args.steps, progress=False)
    nl, _ = naive_loop(model, X, y, dirs, res.axes[0])
    err = max(abs(a - b) for a, b in zip(res.loss.ravel().tolist(), nl))
    with torch.no_grad():
        own = float(F.cross_entropy(model(X), y))
    print(f"\nours vs naive loop, max |diff| over the grid: {err:.2e}; "
          f"centre {res.center_loss:.6g} vs model's own loss {own:.6g}")
    victim = copy.deepcopy(model)
    th0 = flatten(named_params(victim, trainable_only=False)).clone()
    loss_landscapes.random_plane(victim, llm.Loss(F.cross_entropy, X, y), distance=1,
                                 steps=args.steps, normalization="filter")
    moved = float((flatten(named_params(victim, trainable_only=False)) - th0).norm() / th0.norm())
    print(f"loss-landscapes with deepcopy_model=False leaves the model moved by "
          f"{100 * moved:.1f}% of |theta|")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
