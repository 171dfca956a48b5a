"""``inspect-kit report`` on the zoo MLP (64-128-128-10) trained on digits: wall time, page
size, browser load time.

Bars (issue 20): the command, end to end as a user runs it (a fresh process: imports, loading,
every analysis at the standard budgets, figures, writing), within 60 s on this machine; the
page under 5 MB. Also printed: the command's CPU time, the time of each section and of drawing
the page (in-process breakdown), and how long headless Chromium takes to load the page.

The two checkpoints are trained here first (seeds 0 and 1, the zoo defaults: 20 epochs of Adam)
and are not timed. ``--second`` adds the LMC section (the second checkpoint).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_report.py [--second] [--reps 1]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

ROOT = os.path.join(os.path.dirname(__file__), "..")


def train(out: str, seed: int) -> str:
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.data import load_data
    from inspect_kit.zoo.train import train_zoo

    model, _ = train_zoo("mlp", load_data("digits"), seed=seed, progress=False)
    path = os.path.join(out, f"mlp{seed}.pt")
    save_checkpoint(model, path)
    return path


def command(ckpt: str, page: str, second: str | None) -> tuple[float, float, str]:
    """Run the command in a fresh process: (wall seconds, CPU seconds, its stdout)."""
    argv = [sys.executable, "-m", "inspect_kit.cli", "report", ckpt, "--data", "digits",
            "--out", page, "--no-progress"] + (["--second", second] if second else [])
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout.strip()


def breakdown(ckpt: str, second: str | None) -> list[tuple[str, float]]:
    """Seconds of each section and of drawing the page, in this process."""
    from inspect_kit.checkpoints import load_model
    from plotting.report.build import build_report

    b = load_model(second) if second else None
    rep = build_report(load_model(ckpt), "digits", second=b, progress=False)
    t0 = time.perf_counter()
    rep.html(progress=False)
    rows = [(f"{s.key} ({s.status})", s.seconds) for s in rep.sections]
    return rows + [("drawing the page (figures, charts)", time.perf_counter() - t0)]


def browser_load(page: str) -> float | None:
    from tests.browser import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        return None
    with Chromium(binary) as b:
        check = b.open(page)
    if check.errors or len(check.requests) != 1 + sum(
            u.startswith("data:") for u in check.requests[1:]):
        raise RuntimeError(f"page problems: {check.errors} {check.requests[:3]}")
    return check.load_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--second", action="store_true", help="also a second checkpoint (LMC)")
    ap.add_argument("--reps", type=int, default=1, help="runs of the command (best is kept)")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        a = train(tmp, 0)
        b = train(tmp, 1) if args.second else None
        page = os.path.join(tmp, "report.html")
        runs = [command(a, page, b) for _ in range(args.reps)]
        wall, cpu, out = min(runs)
        size = os.path.getsize(page)
        load = browser_load(page)
        rows = breakdown(a, b)
    print(out)
    print("\n| quantity | value | bar |\n|---|---|---|")
    print(f"| wall time of the command (best of {args.reps}) | {wall:.1f} s | <= 60 s: "
          f"{'met' if wall <= 60 else 'NOT met'} |")
    print(f"| CPU time of the command | {cpu:.1f} s | |")
    print(f"| page size | {size / 1e6:.2f} MB | < 5 MB: {'met' if size < 5e6 else 'NOT met'} |")
    print(f"| Chromium load (navigate to load event) | "
          f"{'n/a (no chromium)' if load is None else f'{load:.2f} s'} | |")
    print("\n| in-process part | seconds |\n|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
