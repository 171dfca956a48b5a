"""Fuzz the loaders: random and mutated checkpoints, pykan folders and data files through the CLI.

Seeds (valid files): a kit ``.pt`` with a trajectory, a kit ``.safetensors``, a plain state
dict, a plain ``.safetensors``, a pykan folder and ``.pt``/``.npz`` data files. Each example
applies one mutator to one seed: random bytes, bit flips (1 to 200), truncation, splicing two
files, overwriting a span, and semantic mutations a hostile writer could make (metadata kwargs
such as ``sizes``/``depth`` set to huge or odd values with a *valid* digest, safetensors header
numbers, pykan YAML numbers, data arrays of odd dtypes and shapes). Checkpoints go through
``inspect-kit info`` (every third also ``esd``), pykan folders through ``info``, data files
through ``hessian --top-k 1 --no-trace``, all with ``--json`` into an empty folder.

A worker process runs the examples in-process with its address space capped at its size after
start-up plus 1 GiB (so any allocation above 1 GiB fails and is reported as a violation), a
60 s alarm per example, and the parent kills and restarts it if an example goes silent for
120 s. A violation is: an exit status other than 0 or 2, not exactly one stderr line on exit 2,
an out-of-memory message (an allocation was attempted), an output file left after exit 2, a
hang or a crash of the worker.

Run: ``OMP_NUM_THREADS=1 python benchmarks/fuzz_loaders.py --examples 1200 --seed 0``
(prints a summary; ``--json FILE`` writes it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("random", "bitflip", "truncate", "splice", "overwrite", "semantic")


def make_seeds(folder: Path) -> dict[str, Path]:
    """The valid files every mutation starts from."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from inspect_kit import zoo
    from inspect_kit.checkpoints import save_checkpoint

    torch.manual_seed(0)
    mlp = zoo.build("mlp", sizes=[16, 12, 4])
    traj = [{k: v * (i + 1) for k, v in mlp.state_dict().items()} for i in range(2)]
    save_checkpoint(mlp, folder / "kit.pt", trajectory=traj)
    save_checkpoint(zoo.build("kan", width=[2, 3, 1], grid=3), folder / "kit.safetensors")
    torch.save(mlp.state_dict(), folder / "plain.pt")
    save_file(mlp.state_dict(), folder / "plain.safetensors")
    x, y = torch.randn(24, 16), torch.randint(0, 4, (24,))
    torch.save({"x": x, "y": y}, folder / "data.pt")
    np.savez(folder / "data.npz", x=x.numpy(), y=y.numpy())
    import contextlib
    import io

    import kan

    with contextlib.redirect_stdout(io.StringIO()):
        m = kan.MultKAN(width=[2, 3, 1], grid=3, k=3, seed=0, auto_save=False,
                        ckpt_path=str(folder / "pk_model"))
        m.saveckpt(str(folder / "pk"))
    return {"kit.pt": folder / "kit.pt", "kit.safetensors": folder / "kit.safetensors",
            "plain.pt": folder / "plain.pt", "plain.safetensors": folder / "plain.safetensors",
            "pykan": folder / "pk", "data.pt": folder / "data.pt", "data.npz": folder / "data.npz"}


def _semantic_checkpoint(name: str, src: Path, rng: random.Random, dst: Path) -> None:
    """Odd metadata with a valid digest, or odd safetensors header numbers."""
    import torch

    from inspect_kit import integrity

    odd = rng.choice([0, -1, 10**9, 2**62, 200000, 3.5, "x", None, [], {}, [64, 10**6, 10**6, 4]])
    if name == "kit.pt":
        obj = torch.load(src, weights_only=True)
        meta = obj["inspect_kit"]
        kw = meta["zoo"]["kwargs"]
        target = rng.choice(["sizes", "depth", "activation", "dim", "width", "new"])
        if target == "sizes" and rng.random() < 0.5:
            kw["sizes"][rng.randrange(len(kw["sizes"]))] = odd
        elif target == "depth":
            meta["zoo"] = {"name": "vit", "kwargs": {"depth": odd, "dim": 16, "heads": 2}}
        else:
            kw[target] = odd
        meta.pop("digest", None)
        sections = {"state_dict": obj["state_dict"],
                    **{f"trajectory.{i}": s for i, s in enumerate(obj["trajectory"])}}
        try:
            meta["digest"] = integrity.digest(meta, sections)
        except (TypeError, ValueError):
            pass
        obj["inspect_kit_digest"] = meta.get("digest")
        torch.save(obj, dst)
        return
    if rng.random() < 0.5:  # hostile kwargs in the metadata, with a valid digest
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(src), framework="pt") as fh:
            sd = {k: fh.get_tensor(k) for k in fh.keys()}
            meta = json.loads(fh.metadata()["inspect_kit"])
        meta.pop("digest")
        meta["zoo"]["kwargs"][rng.choice(["width", "grid", "k", "new"])] = odd
        try:
            meta["digest"] = integrity.digest(meta, {"state_dict": sd})
        except (TypeError, ValueError):
            meta["digest"] = "sha256:0"
        save_file(sd, dst, metadata={"inspect_kit": json.dumps(meta),
                                     "inspect_kit_digest": meta["digest"]})
        return
    blob = src.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = blob[8:8 + n].decode()
    nums = [i for i, ch in enumerate(header) if ch.isdigit()]
    at = rng.choice(nums)
    header = header[:at] + str(rng.choice([0, 9, 10**6, 10**12, 2**63])) + header[at + 1:]
    raw = header.encode()
    dst.write_bytes(len(raw).to_bytes(8, "little") + raw + blob[8 + n:])


def _semantic_data(src: Path, rng: random.Random, dst: Path) -> None:
    import numpy as np

    shapes = [(24, 16), (24,), (0, 16), (24, 16, 2), (3, 16), (24, 10**3)]
    dtypes = [np.float32, np.float64, np.int64, np.bool_, np.complex64, np.float16, np.uint8]
    x = np.ones(rng.choice(shapes), dtype=rng.choice(dtypes))
    if x.dtype.kind == "f" and x.size and rng.random() < 0.5:
        x.flat[0] = rng.choice([np.nan, np.inf, 1e38])
    y = np.zeros(rng.choice([(24,), (24, 4), (3,), ()]), dtype=rng.choice(dtypes))
    if dst.suffix == ".npz":
        np.savez(dst, **{rng.choice(["x", "x", "xx"]): x, "y": y})
    else:
        import torch

        torch.save({"x": torch.as_tensor(x) if x.dtype != np.uint16 else x, "y": torch.as_tensor(y)},
                   dst)


def mutate(kind: str, name: str, seeds: dict[str, Path], rng: random.Random, dst: Path) -> None:
    """Write one mutated example of seed ``name`` to ``dst`` (a folder for pykan)."""
    if name == "pykan":
        dst.mkdir()
        part = rng.choice(["config.yml", "state"])
        other = "state" if part == "config.yml" else "config.yml"
        (dst / f"m_{other}").write_bytes(Path(f"{seeds['pykan']}_{other}").read_bytes())
        src = Path(f"{seeds['pykan']}_{part}")
        out = dst / f"m_{part}"
        if kind == "semantic" and part == "config.yml":
            lines = src.read_text().splitlines()
            i = rng.randrange(len(lines))
            lines[i] = lines[i].replace("3", str(rng.choice([0, -2, 10**6, 10**12])), 1) \
                if "3" in lines[i] else lines[i] + rng.choice([" [", ": :", " &a", " *a"])
            out.write_text("\n".join(lines) + "\n")
            return
        src_blob = src.read_bytes()
    else:
        src = seeds[name]
        if kind == "semantic" and name in ("kit.pt", "kit.safetensors"):
            _semantic_checkpoint(name, src, rng, dst)
            return
        if kind == "semantic" and name.startswith("data"):
            _semantic_data(src, rng, dst)
            return
        src_blob, out = src.read_bytes(), dst
    blob = bytearray(src_blob)
    if kind == "random":
        blob = bytearray(rng.randbytes(rng.choice([0, 1, 8, 100, 4096, 65536, 999_999])))
    elif kind in ("bitflip", "semantic"):
        for _ in range(rng.choice([1, 1, 2, 10, 200])):
            if blob:
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        blob = blob[:rng.randrange(len(blob) + 1)]
    elif kind == "splice":
        other = seeds[rng.choice([k for k in seeds if k != "pykan"])].read_bytes()
        cut = rng.randrange(len(blob) + 1)
        blob = blob[:cut] + other[rng.randrange(len(other) + 1):]
    elif kind == "overwrite" and blob:
        a = rng.randrange(len(blob))
        b = min(len(blob), a + rng.choice([1, 8, 64, 512]))
        blob[a:b] = rng.choice([b"\x00", b"\xff"]) * (b - a) if rng.random() < 0.5 \
            else rng.randbytes(b - a)
    out.write_bytes(bytes(blob))


def plan(n: int, seed: int, folder: Path) -> list[dict]:
    """The examples: files written under ``folder`` and the CLI arguments for each."""
    seeds = make_seeds(folder / "seeds")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(list(seeds))
        kind = rng.choice(KINDS)
        suffix = {"pykan": "", "data.npz": ".npz"}.get(name, Path(name).suffix)
        dst = folder / f"ex{i:05d}{suffix}"
        mutate(kind, name, seeds, rng, dst)
        outdir = folder / f"out{i:05d}"
        if name.startswith("data"):
            argv = ["hessian", str(seeds["kit.pt"]), "--data", str(dst), "--top-k", "1",
                    "--no-trace"]
        elif name != "pykan" and i % 3 == 0:
            argv = ["esd", str(dst)]
        else:
            argv = ["info", str(dst / "m") if name == "pykan" else str(dst)]
        out.append({"i": i, "seed_file": name, "kind": kind, "size": _size(dst),
                    "argv": argv + ["--json", str(outdir / "r.json")], "out": str(outdir)})
    return out


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.iterdir()) if p.is_dir() else p.stat().st_size


# ---- worker --------------------------------------------------------------------------------

def worker(manifest: Path, start: int) -> None:
    import resource
    import signal

    sys.path.insert(0, str(ROOT))
    os.environ["INSPECT_KIT_PROGRESS"] = "0"
    import torch  # noqa: F401  (loaded before the cap)

    from inspect_kit.cli import main

    examples = json.loads(manifest.read_text())
    vm = int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmSize")))
    resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + (1 << 30), resource.RLIM_INFINITY))

    def alarm(*_: object) -> None:
        raise TimeoutError("example took longer than 60 s")

    signal.signal(signal.SIGALRM, alarm)
    tmp = Path(tempfile.mkdtemp())
    for ex in examples[start:]:
        print(json.dumps({"begin": ex["i"]}), flush=True)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        saved = os.dup(1), os.dup(2)
        with open(tmp / "o", "w") as fo, open(tmp / "e", "w") as fe:
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
            t0 = time.perf_counter()
            signal.alarm(60)
            try:
                code = main(ex["argv"])
            except TimeoutError:
                code = "hang"
            except BaseException as exc:  # noqa: BLE001 - reported as a violation
                code = f"raised {type(exc).__name__}"
            finally:
                signal.alarm(0)
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        err = (tmp / "e").read_text(errors="replace").strip().splitlines()
        left = [str(p) for p in Path(ex["out"]).rglob("*")] if Path(ex["out"]).exists() else []
        print(json.dumps({"i": ex["i"], "code": code, "stderr": err[:3], "lines": len(err),
                          "seconds": time.perf_counter() - t0, "left": left,
                          "rss_growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          - rss0, "max_rss_kb": resource.getrusage(
                              resource.RUSAGE_SELF).ru_maxrss}), flush=True)


# ---- parent --------------------------------------------------------------------------------

def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    for ln in proc.stdout:
        lines.put(ln)
    lines.put(None)


def run(examples: list[dict], manifest: Path, silence: float = 120.0) -> list[dict]:
    """Run every example in worker processes; a silent or dead worker is replaced."""
    results: dict[int, dict] = {}
    start = 0
    while start < len(examples):
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(manifest),
                                 "--start", str(start)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
        current = start
        while True:
            try:
                ln = lines.get(timeout=silence)
            except queue.Empty:
                proc.kill()
                results[current] = {"i": current, "code": "hang (killed)", "lines": 0}
                break
            if ln is None:
                proc.wait()
                if current not in results and current < len(examples):
                    results[current] = {"i": current, "code": f"worker died ({proc.returncode})",
                                        "lines": 0}
                break
            rec = json.loads(ln)
            if "begin" in rec:
                current = rec["begin"]
            else:
                results[rec["i"]] = rec
        start = max(results) + 1 if results else start + 1
    return [results[i] | {k: examples[i][k] for k in ("seed_file", "kind", "size")}
            for i in sorted(results)]


def violations(results: list[dict]) -> list[dict]:
    bad = []
    for r in results:
        err = " ".join(r.get("stderr", []))
        if r["code"] not in (0, 2) or (r["code"] == 2 and (r["lines"] != 1 or r.get("left"))) \
                or "out of memory" in err or r.get("rss_growth_kb", 0) > (1 << 20):
            bad.append(r)
    return bad


def summary(results: list[dict], seconds: float) -> dict:
    return {"examples": len(results),
            "exits": dict(collections.Counter(str(r["code"]) for r in results)),
            "by_kind": dict(collections.Counter(r["kind"] for r in results)),
            "by_seed_file": dict(collections.Counter(r["seed_file"] for r in results)),
            "max_input_bytes": max(r["size"] for r in results),
            "max_rss_growth_mb": round(max(r.get("rss_growth_kb", 0) for r in results) / 1024, 1),
            "max_rss_mb": round(max(r.get("max_rss_kb", 0) for r in results) / 1024, 1),
            "max_seconds": round(max(r.get("seconds", 0.0) for r in results), 2),
            "wall_seconds": round(seconds, 1), "violations": violations(results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the summary here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker), args.start)
        return
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "seeds").mkdir()
        examples = plan(args.examples, args.seed, folder)
        manifest = folder / "manifest.json"
        manifest.write_text(json.dumps(examples))
        out = summary(run(examples, manifest), time.perf_counter() - t0)
    print(json.dumps({k: v for k, v in out.items() if k != "violations"}, indent=1))
    print(f"violations: {len(out['violations'])}")
    for v in out["violations"][:20]:
        print(" ", json.dumps(v)[:400])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
