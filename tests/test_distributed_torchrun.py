"""The real launcher: ``torchrun --nproc-per-node 2 -m inspect_kit.cli hessian|landscape|lmc``.

Slow (each launch starts two Python processes with torch); the forked Gloo group of
``test_distributed_equal.py`` covers the same code paths by default. The truth is the same
command run as one plain process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", INSPECT_KIT_PROGRESS="0")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    import torch

    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.data import load_data
    from inspect_kit.zoo import build
    from inspect_kit.zoo.train import fit

    d = tmp_path_factory.mktemp("ckpt")
    for s in (0, 1):
        torch.manual_seed(s)
        m = build("mlp", sizes=(64, 32, 32, 10))
        fit(m, load_data("digits"), epochs=2, seed=s, progress=False)
        save_checkpoint(m, d / f"m{s}.pt")
    return d


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [
    ["hessian", "m0.pt", "--dtype", "float64", "--top-k", "3"],
    ["landscape", "m0.pt", "--steps", "5", "--resume", "part.json"],
    ["lmc", "m0.pt", "m1.pt", "--steps", "7", "--layerwise"],
])
def test_torchrun_two_ranks_equals_one_process(ckpts, tmp_path, cmd):
    torchrun = shutil.which("torchrun") or pytest.skip("torchrun not found")
    args = [a if not a.endswith(".pt") else str(ckpts / a) for a in cmd]
    args = [str(tmp_path / a) if a == "part.json" else a for a in args]
    base = [*args, "--data", "digits", "--json"]
    two = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                          "--master-port", str(_port()), "-m", "inspect_kit.cli", *base,
                          str(tmp_path / "two.json")], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "inspect_kit.cli", *base,
                          str(tmp_path / "one.json")], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.stdout.strip() and two.stdout.count("\n") == one.stdout.count("\n")  # rank 0 only
    a = json.loads((tmp_path / "one.json").read_text())["result"]
    b = json.loads((tmp_path / "two.json").read_text())["result"]
    key = {"hessian": "eigenvalues", "landscape": "loss", "lmc": "loss"}[cmd[0]]
    va, vb = a[key], b[key]
    if isinstance(va, dict):
        va, vb = [va[k] for k in sorted(va)], [vb[k] for k in sorted(vb)]
    np.testing.assert_allclose(np.asarray(vb, float), np.asarray(va, float), rtol=1e-6)
