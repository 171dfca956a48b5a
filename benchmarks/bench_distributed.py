"""HVPs per second and landscape grid points per second on 1 and 2 ranks (Gloo, this CPU).

    OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py [--rounds 3] [--hvps 40]
        [--steps 9] [--repeat 4]

Model: zoo ``mlp`` (64, 32, 32, 10) trained 2 epochs on digits; data: the digits training split
tiled ``--repeat`` times (more samples per HVP, so the compute per shard is not negligible).
Each round runs 1 rank (a plain process, no group) and then 2 ranks (a Gloo group on loopback),
each in fresh forked processes with one thread each; the best round is reported. Per setting:
wall time of the slowest rank, total CPU time over ranks, rate, and the scaling efficiency
``rate_2 / (2 rate_1)`` (wall clock) and the CPU efficiency ``CPU_1 / CPU_2`` (total CPU
time over ranks for the same work: 1.0 means no overhead from sharding and communication).
HVP work: ``--hvps`` single-vector products, then ``--hvps`` probes in blocks of 16 (one
all-reduce per block). Grid work: a ``steps x steps`` random plane
(``method="loop"``; under 2 ranks each rank does half the points on the full data).
On a shared machine the wall-clock ratios are noisy; the CPU column shows the work done.
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspect_kit import distributed as D  # noqa: E402
from inspect_kit.data import load_data  # noqa: E402
from inspect_kit.zoo import build  # noqa: E402
from inspect_kit.zoo.train import fit  # noqa: E402

SIZES = (64, 32, 32, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _work(state: dict, data: tuple, hvps: int, steps: int) -> dict:
    from analyses.hessian.distributed import make_operator

    from analyses.landscape.api import landscape

    model = build("mlp", sizes=SIZES)
    model.load_state_dict(state)
    out = {}
    op = make_operator(model, data)
    g = torch.Generator().manual_seed(0)
    V = torch.randn(hvps, op.n, generator=g)
    op.matvec(V[0])  # warm-up
    D.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    for v in V:
        op.matvec(v)
    D.barrier()
    out["hvp"] = (time.perf_counter() - t0, time.process_time() - c0, hvps)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, hvps, 16):
        op.matvec(V[i:i + 16])
    D.barrier()
    out["block"] = (time.perf_counter() - t0, time.process_time() - c0, hvps)
    t0, c0 = time.perf_counter(), time.process_time()
    landscape(model, data, dims=2, steps=steps, method="loop", progress=False)
    D.barrier()
    out["grid"] = (time.perf_counter() - t0, time.process_time() - c0, steps * steps)
    return out


def _worker(r: int, world: int, port: int, tmp: str, state: dict, data: tuple, hvps: int,
            steps: int) -> None:
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        D.setup(backend="gloo")
    try:
        out = _work(state, data, hvps, steps)
    finally:
        D.teardown()
    Path(tmp, f"r{r}.pkl").write_bytes(pickle.dumps(out))


def run(world: int, state: dict, data: tuple, hvps: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        torch.multiprocessing.start_processes(
            _worker, args=(world, _free_port(), tmp, state, data, hvps, steps), nprocs=world,
            start_method="fork", join=True)
        outs = [pickle.loads(Path(tmp, f"r{r}.pkl").read_bytes()) for r in range(world)]
    # wall: slowest rank; CPU: summed over ranks; count: per job
    return {k: (max(o[k][0] for o in outs), sum(o[k][1] for o in outs), outs[0][k][2])
            for k in outs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hvps", type=int, default=48)
    p.add_argument("--steps", type=int, default=9)
    p.add_argument("--repeat", type=int, default=4)
    a = p.parse_args()
    torch.manual_seed(0)
    b = load_data("digits")
    model = build("mlp", sizes=SIZES)
    fit(model, b, epochs=2, seed=0, progress=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    data = (b.x_train.repeat(a.repeat, 1), b.y_train.repeat(a.repeat))
    n_params = sum(v.numel() for v in state.values())
    best: dict[int, dict] = {}
    for _ in range(a.rounds):
        for world in (1, 2):
            res = run(world, state, data, a.hvps, a.steps)
            for k, v in res.items():
                if world not in best:
                    best[world] = {}
                if k not in best[world] or v[0] < best[world][k][0]:
                    best[world][k] = v
    print(f"# {n_params} parameters, {len(data[0])} samples, {a.hvps} HVPs, {a.steps}x{a.steps}"
          f" grid, best of {a.rounds} rounds, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| work | ranks | wall s | CPU s (all ranks) | rate / s | scaling efficiency (wall) "
          "| CPU efficiency |")
    print("|---|---|---|---|---|---|---|")
    names = {"hvp": "HVP (single vector)", "block": "HVP (blocks of 16)",
             "grid": "landscape grid points"}
    for k, label in names.items():
        r1 = best[1][k][2] / best[1][k][0]
        cpu1 = best[1][k][1]
        for world in (1, 2):
            wall, cpu, count = best[world][k]
            rate = count / wall
            eff = "" if world == 1 else f"{rate / (world * r1):.2f}"
            ceff = "" if world == 1 else f"{cpu1 / cpu:.2f}"
            print(f"| {label} | {world} | {wall:.3f} | {cpu:.3f} | {rate:.1f} | {eff} | {ceff} |")


if __name__ == "__main__":
    main()
