"""Hessian top-5 of an ~86M-parameter encoder within 8 GB, against an independent power iteration.

Model (built identically, from the seed, in every subprocess): token embedding (vocab 1000,
width 768) -> ``nn.TransformerEncoder`` (12 layers, d_model 768, 12 heads, FFN 3072, post-norm,
every layer initialised independently) -> mean over tokens -> ``Linear(768, 2)``; 85.8M
parameters, float32, eval mode. Data: 4 sequences of 16 tokens with binary labels
(cross-entropy, the kit's default for integer targets).

Three roles, each in its own subprocess (one heavy process at a time), so that each peak RSS
(``ru_maxrss``, read by the parent with ``os.wait4``) is that computation's alone:

* ``kit``: ``hessian(model, (x, y), top_k=5, trace=False, memory=...)``;
* ``power``: power iteration with plain ``torch.autograd`` double backward on a hand-written loss
  (``F.cross_entropy(model(x), y)``; no kit code), Rayleigh quotients until they change by less
  than ``--power-tol`` (relative);
* ``refuse``: the same call with ``memory=`` too small for the basis (``--refuse-memory``,
  default 1GB): it must raise ``SizeLimitError`` saying what fits, not crash;
* ``profile``: the kit run with RSS snapshots at every phase (view, product engine, each product,
  Lanczos) and a 20 ms RSS sampler, to see what holds the memory.

The parent prints both peaks and times, and |lambda_1(kit) - lambda_1(power)| / |lambda_1(power)|
against the 1e-3 bar.

Run (from the repository root; needs ~8 GB free for the kit run and ~3 GB for the power run):

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_hessian_scale.py

``memory=`` bounds what the estimator stores (the Lanczos basis); the model, the cached gradient
graph and the products' temporaries come on top (about 2.6 GB here), hence the default
``--memory 4.5GB`` for an 8 GB peak.
    ... --roles profile          # where the memory goes
    ... --layers 2               # a 2-layer shape check in a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# ---------------------------------------------------------------------------------------------
# the model and the batch (identical in every subprocess)

def build(layers: int = 12, d: int = 768, heads: int = 12, ff: int = 3072, vocab: int = 1000,
          classes: int = 2, batch: int = 4, tokens: int = 16, seed: int = 0):  # noqa: ANN201
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            layer = nn.TransformerEncoderLayer(d, heads, ff, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d, classes)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(ids)).mean(dim=1))

    torch.manual_seed(seed)
    model = Encoder()
    for i, lay in enumerate(model.encoder.layers):  # TransformerEncoder deep-copies one layer
        torch.manual_seed(seed + 1 + i)
        for mod in lay.modules():
            if isinstance(mod, (nn.Linear, nn.LayerNorm)):
                mod.reset_parameters()
        lay.self_attn._reset_parameters()
    model.eval()
    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randint(0, vocab, (batch, tokens), generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    return model, x, y


def fingerprint(model) -> float:  # noqa: ANN001
    """A checksum of the parameters: both subprocesses must build the same model."""
    import torch

    with torch.no_grad():
        return float(sum(p.double().sum() + p.double().abs().sum() for p in model.parameters()))


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------------------------
# roles

def role_kit(args: argparse.Namespace) -> dict:
    import torch

    from analyses.hessian import hessian

    model, x, y = build(layers=args.layers, tokens=args.tokens, batch=args.batch)
    n = sum(p.numel() for p in model.parameters())
    built_rss = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    res = hessian(model, (x, y), top_k=5, trace=False, memory=args.memory, tol=args.tol,
                  max_steps=args.max_steps, progress=args.progress)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"role": "kit", "n_params": n, "fingerprint": fingerprint(model),
            "eigenvalues": res.eigenvalues.tolist(), "residuals": res.residuals.tolist(),
            "converged": list(res.converged), "hvp_count": res.hvp_count,
            "lanczos_steps": res.lanczos_steps, "seconds": seconds, "cpu_seconds": cpu,
            "rss_after_build": built_rss, "peak_rss_self": peak_bytes(),
            "torch_threads": torch.get_num_threads()}


def role_power(args: argparse.Namespace) -> dict:
    """Power iteration on autograd HVPs of ``F.cross_entropy(model(x), y)``: no kit code."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, x, y = build(layers=args.layers, tokens=args.tokens, batch=args.batch)
    params = [p for p in model.parameters() if p.requires_grad]
    built_rss = rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    g = torch.Generator().manual_seed(1234)
    with sdpa_kernel([SDPBackend.MATH]):  # the fused CPU attention has no double backward
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn(p.shape, generator=g) for p in params]
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        lam, prev, history = 0.0, None, []
        for _ in range(args.power_iters):
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
            lam = float(sum((a * b).sum(dtype=torch.float64) for a, b in zip(hv, v)))
            norm = torch.sqrt(sum((t.double() * t.double()).sum() for t in hv))
            v = [(t / norm).detach() for t in hv]
            history.append(lam)
            if prev is not None and abs(lam - prev) <= args.power_tol * abs(lam):
                break
            prev = lam
    # residual of the final Rayleigh pair: ||H v - lam v|| with v the last normalised vector
    with sdpa_kernel([SDPBackend.MATH]):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=False)
    lam_v = float(sum((a * b).sum(dtype=torch.float64) for a, b in zip(hv, v)))
    resid = float(torch.sqrt(sum(((a - lam_v * b).double() ** 2).sum() for a, b in zip(hv, v))))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"role": "power", "n_params": sum(p.numel() for p in params),
            "fingerprint": fingerprint(model), "lambda": lam_v, "residual": resid,
            "iterations": len(history) + 1, "last_change": abs(history[-1] - history[-2]) / abs(lam)
            if len(history) > 1 else None, "history_tail": history[-5:],
            "loss": float(loss.detach()), "seconds": seconds, "cpu_seconds": cpu,
            "rss_after_build": built_rss, "peak_rss_self": peak_bytes()}


def role_profile(args: argparse.Namespace) -> dict:
    """The kit run with RSS snapshots at each phase (torch allocations are invisible to
    tracemalloc, so resident memory is read from /proc)."""
    from analyses.hessian import api, lanczos, operator
    from inspect_kit.view import hvp as hvp_mod

    events: list[tuple[float, str, int]] = []
    t_start = time.perf_counter()
    peak = {"rss": 0, "where": ""}
    where = {"phase": "start"}

    def mark(label: str) -> None:
        r = rss_bytes()
        events.append((time.perf_counter() - t_start, label, r))
        where["phase"] = label

    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            r = rss_bytes()
            if r > peak["rss"]:
                peak.update(rss=r, where=where["phase"])
            time.sleep(0.02)

    def wrap(owner, name: str, label: str, every: bool = True) -> None:  # noqa: ANN001
        fn = getattr(owner, name)
        count = {"n": 0}

        def inner(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            count["n"] += 1
            k = count["n"]
            if every or k <= 3:
                mark(f"{label} #{k} enter")
            out = fn(*a, **kw)
            if every or k <= 3:
                mark(f"{label} #{k} exit")
            return out

        setattr(owner, name, inner)

    wrap(api, "make_view", "make_view")
    wrap(hvp_mod.HessianProducts, "__init__", "HessianProducts.__init__ (graph cached)")
    wrap(operator.HessianOperator, "matvec", "product", every=True)
    wrap(lanczos.Basis, "append", "basis.append")
    wrap(lanczos.Basis, "combine", "basis.combine (thick restart)")
    wrap(api, "lanczos_eigs", "lanczos_eigs")
    threading.Thread(target=sampler, daemon=True).start()
    mark("import")
    model, x, y = build(layers=args.layers, tokens=args.tokens, batch=args.batch)
    mark("model built")
    res = api.hessian(model, (x, y), top_k=5, trace=False, memory=args.memory, tol=args.tol,
                      max_steps=args.max_steps, progress=False)
    mark("done")
    stop.set()
    return {"role": "profile", "events": events, "sampled_peak": peak,
            "peak_rss_self": peak_bytes(), "eigenvalues": res.eigenvalues.tolist(),
            "hvp_count": res.hvp_count}


def role_refuse(args: argparse.Namespace) -> dict:
    """``memory=`` below what top-5 needs (8 basis vectors): a SizeLimitError naming what fits."""
    from analyses.hessian import hessian
    from inspect_kit.errors import SizeLimitError

    model, x, y = build(layers=args.layers, tokens=args.tokens, batch=args.batch)
    t0 = time.perf_counter()
    try:
        hessian(model, (x, y), top_k=5, trace=False, memory=args.refuse_memory, progress=False)
    except SizeLimitError as exc:
        return {"role": "refuse", "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0, "peak_rss_self": peak_bytes()}
    return {"role": "refuse", "error": None, "seconds": time.perf_counter() - t0,
            "peak_rss_self": peak_bytes()}


ROLES = {"kit": role_kit, "power": role_power, "profile": role_profile, "refuse": role_refuse}


# ---------------------------------------------------------------------------------------------
# the parent: one subprocess per role, peak RSS from wait4

def run_child(role: str, argv: list[str]) -> tuple[dict, int, float, list[float]]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", role, *argv]
    t0 = time.perf_counter()
    loads: list[float] = []
    done = threading.Event()

    def sample_load() -> None:  # the 1-minute load average every 10 s while the child runs
        while not done.wait(10.0):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample_load, daemon=True).start()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{role} subprocess failed with exit code {proc.returncode}")
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), usage.ru_maxrss * 1024, wall, loads


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def meminfo() -> str:
    vals = {}
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0]) * 1024
    return f"MemTotal {gb(vals['MemTotal'])}, MemAvailable {gb(vals['MemAvailable'])}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=sorted(ROLES))
    ap.add_argument("--roles", default="kit,power,refuse",
                    help="comma list of kit, power, refuse, profile")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--memory", default="4.5GB",
                    help="hessian(memory=...): the basis budget (13 vectors of 85.8M floats)")
    ap.add_argument("--refuse-memory", default="1GB", help="budget of the refuse role")
    ap.add_argument("--tol", type=float, default=1e-6, help="hessian(tol=...) (its default)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--power-iters", type=int, default=500)
    ap.add_argument("--power-tol", type=float, default=1e-7)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    if args.child:
        out = ROLES[args.child](args)
        print("RESULT " + json.dumps(out), flush=True)
        return
    argv = [a for a in sys.argv[1:] if not a.startswith("--roles")]
    if "--roles" in sys.argv:  # drop the value that followed "--roles"
        i = sys.argv.index("--roles")
        argv = sys.argv[1:i] + sys.argv[i + 2:]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {meminfo()}, "
          f"load average {os.getloadavg()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    results = {}
    for role in args.roles.split(","):
        load0 = os.getloadavg()[0]
        out, peak, wall, loads = run_child(role, argv)
        results[role] = out
        during = (f", during {min(loads):.2f}-{max(loads):.2f} (mean {sum(loads) / len(loads):.2f})"
                  if loads else "")
        print(f"[{role}] peak RSS {gb(peak)} (ru_maxrss of the subprocess), wall {wall:.1f} s "
              f"incl. model build; load average at start {load0:.2f}{during}", flush=True)
        if role == "kit":
            print(f"  n = {out['n_params']:,} parameters; hessian(top_k=5, trace=False, "
                  f"memory={args.memory!r}): {out['seconds']:.1f} s wall, "
                  f"{out['cpu_seconds']:.1f} s CPU, {out['hvp_count']} HVPs, "
                  f"RSS after building the model {gb(out['rss_after_build'])}")
            print("  top-5: " + ", ".join(f"{v:.6g}" for v in out["eigenvalues"]))
            print("  residuals: " + ", ".join(f"{v:.2e}" for v in out["residuals"])
                  + f"; converged {out['converged']}")
        elif role == "power":
            print(f"  power iteration: lambda = {out['lambda']:.8g} after {out['iterations']} "
                  f"HVPs, last relative change {out['last_change']:.1e}, residual "
                  f"||Hv - lambda v|| = {out['residual']:.2e}; {out['seconds']:.1f} s wall")
        elif role == "refuse":
            print(f"  hessian(top_k=5, memory={args.refuse_memory!r}) after "
                  f"{out['seconds']:.1f} s: {out['error'] or 'NO ERROR (expected a refusal)'}")
        else:
            for t, label, r in out["events"]:
                print(f"  {t:8.1f} s  {gb(r):>9}  {label}")
            print(f"  sampled peak {gb(out['sampled_peak']['rss'])} during "
                  f"{out['sampled_peak']['where']!r}")
        results[role]["peak_rss"] = peak
    if "kit" in results and "power" in results:
        a, b = results["kit"], results["power"]
        if abs(a["fingerprint"] - b["fingerprint"]) > 1e-6 * abs(b["fingerprint"]):
            raise SystemExit("the two subprocesses built different models")
        rel = abs(a["eigenvalues"][0] - b["lambda"]) / abs(b["lambda"])
        print(f"top-1: kit {a['eigenvalues'][0]:.8g} vs power iteration {b['lambda']:.8g}: "
              f"relative difference {rel:.1e} (bar 1e-3: {'met' if rel <= 1e-3 else 'NOT met'})")
        print(f"peak RSS of the kit run {gb(results['kit']['peak_rss'])} (bar 8 GB: "
              f"{'met' if results['kit']['peak_rss'] <= 8e9 else 'NOT met'})")


if __name__ == "__main__":
    main()
