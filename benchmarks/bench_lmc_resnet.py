"""LMC on two ResNet-18-structured nets: naive vs weight-matched vs matched + REPAIR barriers.

Two nets with torchvision's ResNet-18 structure (``tests/resnet_fixture.py``: BasicBlocks,
1x1-conv + BN downsample branches, max and adaptive-average pooling, BatchNorm everywhere), at
stage-1 width ``--width`` (default 64 = 4 x 16, i.e. "width x4" over Git Re-Basin's base width
16, which is also torchvision's own ResNet-18 width), one input channel, trained briefly
(``--epochs``, Adam, the zoo trainer) from seeds 1 and 2 on the digits upsampled to
``--side`` x ``--side`` pixels. In one process it prints:

* every permutation group the tracer finds (name, size) and the count against the architecture's
  known set (a residual stream per stage + each block's inner channel = 12), and any function
  without a rule;
* the permuted-model equality error: max |logit(A) - logit(pi(A))| over the test images for a
  random permutation of every group (float32, and float64 on a copy);
* a scrambled copy of A recovered by weight matching (fraction of units put back);
* barriers (B_mean and B_lin of the loss; B_mean of the error in percentage points; train and
  test; accuracy at t = 1/2) of the plain path, the plain path with BatchNorm statistics RESET,
  naive + REPAIR, the weight-matched path, matched + RESET and matched + REPAIR
  (``lmc(..., matching="weights", repair=True)``), and the same three for activation matching
  (``matching="activations"``); matching times in process CPU seconds (the machine is shared,
  so no wall-clock claim).

Trained models are cached in ``--cache`` (state dicts named by width/epochs/side/seed).

Run: ``OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_lmc_resnet.py [--width 64]
[--epochs 10] [--side 16] [--steps 13]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analyses.lmc.api import align, lmc  # noqa: E402
from analyses.lmc.interpolate import curve  # noqa: E402
from analyses.lmc.permutation import load_state_copy, model_state, permutation_spec  # noqa: E402
from analyses.lmc.repair import layer_stats, repair_targets, repaired_point  # noqa: E402
from inspect_kit.view import make_view  # noqa: E402
from inspect_kit.zoo.train import fit  # noqa: E402
from tests.resnet_fixture import digits_images, resnet18, resnet18_groups  # noqa: E402


def _trained(width: int, epochs: int, side: int, seed: int, data, cache: str,
             weight_decay: float = 0.0) -> torch.nn.Module:
    m = resnet18(num_classes=10, width=width, in_channels=1, seed=seed)
    wd = f"_wd{weight_decay:g}" if weight_decay else ""
    path = os.path.join(cache, f"resnet18_w{width}_e{epochs}_s{side}{wd}_seed{seed}.pt")
    if os.path.exists(path):
        m.load_state_dict(torch.load(path, weights_only=True))
    else:
        c0 = time.process_time()
        fit(m, data, epochs=epochs, seed=seed, weight_decay=weight_decay, progress=False)
        print(f"trained seed {seed}: {time.process_time() - c0:.0f} s CPU", flush=True)
        os.makedirs(cache, exist_ok=True)
        torch.save(m.state_dict(), path)
    return m.eval()


def _row(name: str, c: dict) -> str:
    bm, bl = c["barrier_mean"], c["barrier_linear"]
    cells = [f"{bm['loss'][s]:.4f}" for s in ("train", "test")]
    cells += [f"{bl['loss'][s]:.4f}" for s in ("train", "test")]
    cells += [f"{100 * bm['error'][s]:.2f}" for s in ("train", "test")]
    mid = int(np.argmin(np.abs(np.asarray(c["t"]) - 0.5)))
    cells += [f"{100 * (1 - c['error'][s][mid]):.1f}" for s in ("train", "test")]
    return f"| {name} | " + " | ".join(cells) + " |"


def _renorm_curve(a, views: dict, state_b: dict, steps: int, correct: bool) -> dict:
    """The straight path with every BatchNorm's statistics RESET on the training data and, with
    ``correct``, REPAIRed (what ``lmc(repair=True)`` does, here for any pair)."""
    train = views["train"]
    sb = {k: train._cast(v) for k, v in state_b.items()}
    keys = list(train.direction_to(sb, all_params=True))
    targets, ends = [], ({}, {})
    if correct:
        targets = repair_targets(a, permutation_spec(a, train.batches[0].args[0][:8], warn=False))
        ends = (layer_stats(train, train.state, targets), layer_stats(train, sb, targets))

    def points(ts):
        return [repaired_point(train, sb, keys, float(t), targets, ends, correct=correct)
                for t in ts]

    return curve(views, {}, point_fn=points, steps=steps)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--side", type=int, default=16)
    ap.add_argument("--steps", type=int, default=13)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                    "inspect_kit_bench_lmc_resnet"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = digits_images(args.side)
    a, b = (_trained(args.width, args.epochs, args.side, s, data, args.cache, args.weight_decay)
            for s in (1, 2))
    n_params = sum(p.numel() for p in a.parameters())
    print(f"ResNet-18 structure, width {args.width} ({n_params / 1e6:.2f} M parameters), "
          f"digits {args.side}x{args.side}, {args.epochs} epochs (Adam, weight decay "
          f"{args.weight_decay:g}), torch {torch.__version__}")
    for name, m, seed in (("A", a, 1), ("B", b, 2)):  # how far training moved the weights
        init = dict(resnet18(num_classes=10, width=args.width, in_channels=1,
                             seed=seed).named_parameters())
        with torch.no_grad():
            cos = [float((init[n] * p).sum() / (init[n].norm() * p.norm()))
                   for n, p in m.named_parameters() if p.dim() == 4]
        print(f"model {name}: cosine(conv weights, their initialisation) "
              f"{min(cos):.3f}..{max(cos):.3f}")
    for name, m in (("A", a), ("B", b)):
        with torch.no_grad():
            acc = [float((m(x).argmax(1) == y).float().mean()) for x, y in
                   ((data.x_train, data.y_train), (data.x_test, data.y_test))]
        print(f"model {name}: train acc {100 * acc[0]:.1f} %, test acc {100 * acc[1]:.1f} %")

    spec = permutation_spec(a, data.x_train[:8])
    want = resnet18_groups(args.width)
    same = sorted((sorted(g.members), g.size) for g in spec.groups) == \
        sorted((sorted(m), s) for m, s in want)
    print(f"\ngroups: {len(spec.groups)} traced, {len(want)} in the architecture, identical "
          f"member sets: {same}; functions without a rule: {list(spec.unknown_ops) or 'none'}")
    for g in spec.groups:
        print(f"  {g.name:<24} {g.size:>4} units, {len(g.members):>2} tensor axes")

    x = data.x_test
    perms = spec.random(7)
    for dtype in (torch.float32, torch.float64):
        src = load_state_copy(a, model_state(a)).to(dtype)
        twin = load_state_copy(src, spec.apply(model_state(src), perms))
        with torch.no_grad():
            ref = src(x.to(dtype))
            err = float((ref - twin(x.to(dtype))).abs().max())
        print(f"permuted model vs original ({str(dtype)[6:]}): max |d logit| = {err:.2e} "
              f"(logits up to {float(ref.abs().max()):.1f})")

    scrambled = load_state_copy(a, spec.apply(model_state(a), perms))
    rec = align(a, scrambled, "weights", data=data, restarts=1)
    back = [float((p[q] == torch.arange(len(p))).double().mean()) for p, q in zip(perms, rec.perms)]
    print(f"scrambled copy of A recovered by weight matching: {100 * min(back):.1f} % of the "
          f"units of the worst group put back")

    c0 = time.process_time()
    res = lmc(a, b, data, matching="weights", repair=True, split="both", steps=args.steps,
              progress=False)
    lmc_cpu = time.process_time() - c0
    res_am = lmc(a, b, data, matching="activations", repair=True, split="both",
                 steps=args.steps, progress=False)
    views = {s: make_view(a, data, split=s) for s in ("train", "test")}
    aligned = align(a, b, "weights", data=data, restarts=args.restarts)
    aligned_am = align(a, b, "activations", data=data)
    curves = {
        "naive": res.curves["naive"],
        "naive + RESET": _renorm_curve(a, views, model_state(b), args.steps, False),
        "naive + REPAIR": _renorm_curve(a, views, model_state(b), args.steps, True),
        "weight matching": res.curves["aligned"],
        "matched + RESET": _renorm_curve(a, views, model_state(aligned.model), args.steps, False),
        "matched + REPAIR": res.curves["repaired"],
        "activation matching": res_am.curves["aligned"],
        "act. matched + RESET": _renorm_curve(a, views, model_state(aligned_am.model), args.steps,
                                              False),
        "act. matched + REPAIR": res_am.curves["repaired"],
    }
    print(f"\nweight matching: {res.aligned['sweeps']} sweeps over {args.restarts} restarts, "
          f"{res.aligned['cpu_seconds']:.1f} s CPU; permuted copy of B vs B: max |d logit| = "
          f"{res.aligned['max_abs_delta_logit']:.2e}; {100 * res.aligned['fraction_moved']:.1f} % "
          f"of parameter entries moved; lmc() call {lmc_cpu:.0f} s CPU")
    print(f"activation matching: {res_am.aligned['cpu_seconds']:.1f} s CPU; max |d logit| = "
          f"{res_am.aligned['max_abs_delta_logit']:.2e}; units placed as weight matching placed "
          "them: " + " ".join(f"{100 * float((p == q).double().mean()):.0f}%"
                              for p, q in zip(aligned.perms, aligned_am.perms)))
    print(f"\n{args.steps} uniform points in [0, 1] plus refinement near the maximum\n")
    print("| path | train B_mean | test B_mean | train B_lin | test B_lin | train err pp | "
          "test err pp | train acc @1/2 | test acc @1/2 |")
    print("|---" * 9 + "|")
    for name, c in curves.items():
        print(_row(name, c))
    vr = res.repair["variance_ratio"]
    print(f"\nvariance collapse at t = 1/2 after matching (BN outputs, mean over "
          f"{len(vr)} BNs): {np.mean(list(vr.values())):.3f} "
          f"(min {min(vr.values()):.3f} at {min(vr, key=vr.get)}); after REPAIR: "
          f"{np.mean(list(res.repair['variance_ratio_repaired'].values())):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
