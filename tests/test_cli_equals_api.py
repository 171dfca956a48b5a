"""The command line's numbers are the Python API's numbers for the same inputs.

Each command runs on a saved checkpoint with ``--json``; the file is read back with the Result
class's ``load()`` and compared field by field (every number, recursively) with the Result of
the Python entry point called on the model loaded from the same checkpoint, the same data spec
and the same options. Only wall-clock fields and the provenance (which records how the call was
made) are left out.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

from inspect_kit import zoo
from inspect_kit.checkpoints import load_model, save_checkpoint
from inspect_kit.cli import main
from inspect_kit.data import load_data

#: fields that measure time or record how a call was made, not what it computed
IGNORED = {"provenance", "seconds", "cpu_seconds", "ms_per_point", "engine_ms_per_point",
           "wall_ms_per_point", "timings", "started", "engine"}


def assert_same(a: Any, b: Any, path: str = "result", rtol: float = 1e-9) -> int:
    """Recursive equality of two ``to_dict()`` trees (numbers to ``rtol``); returns how many
    numbers were compared."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        keys = set(a) - IGNORED
        assert keys == set(b) - IGNORED, f"{path}: keys {sorted(keys ^ (set(b) - IGNORED))}"
        return sum(assert_same(a[k], b[k], f"{path}.{k}", rtol) for k in sorted(keys))
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: lengths differ"
        return sum(assert_same(x, y, f"{path}[{i}]", rtol) for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, f"{path}: {a!r} != {b!r}"
        return 0
    if isinstance(a, (int, float)):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), f"{path}: {b!r}"
        if math.isnan(a):
            assert math.isnan(b), f"{path}: nan vs {b}"
        else:
            assert b == pytest.approx(a, rel=rtol, abs=1e-12), f"{path}: {a} vs {b}"
        return 1
    raise AssertionError(f"{path}: unexpected type {type(a).__name__}")


def _cli(tmp_path, argv: list[str]):
    from inspect_kit.results import Result

    out = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv + ["--json", str(out), "--no-progress"]) == 0
    return Result.load(out)


def _ckpt(tmp_path, model, name: str = "m.pt") -> str:
    path = tmp_path / name
    save_checkpoint(model, path)
    return str(path)


def test_hessian_cli_equals_api(tmp_path):
    from analyses.hessian.api import hessian
    from analyses.hessian.result import HessianResult

    ck = _ckpt(tmp_path, zoo.build("mlp", sizes=(64, 6, 10), seed=0))
    cli = _cli(tmp_path, ["hessian", ck, "--data", "digits", "--samples", "100", "--top-k", "2",
                          "--which", "both", "--trace-budget", "20", "--density",
                          "--density-probes", "2", "--density-steps", "15", "--blocks",
                          "--tol", "1e-4", "--seed", "3"])
    assert type(cli) is HessianResult
    api = hessian(load_model(ck), load_data("digits", seed=3), samples=100, top_k=2,
                  which="both", trace_budget=20, density=True, density_probes=2,
                  density_steps=15, blocks="layer", tol=1e-4, seed=3, progress=False)
    assert cli.eigenvalues.shape == (4,)
    assert assert_same(cli.to_dict(), api.to_dict()) > 50


def test_landscape_cli_equals_api(tmp_path):
    from analyses.landscape.api import landscape

    ck = _ckpt(tmp_path, zoo.build("mlp", sizes=(64, 6, 10), seed=1))
    cli = _cli(tmp_path, ["landscape", ck, "--data", "digits", "--samples", "80", "--dims", "2",
                          "--steps", "5", "--seed", "2"])
    api = landscape(load_model(ck), load_data("digits", seed=2), samples=80, dims=2, steps=5,
                    seed=2, progress=False)
    assert cli.loss.shape == (5, 5)
    # the automatic engine may pick loop in one run and vmap in the other: same numbers to 1e-6
    assert assert_same(cli.to_dict(), api.to_dict(), rtol=1e-6) >= 50


def test_lmc_cli_equals_api(tmp_path):
    from analyses.lmc.api import lmc

    cks = [_ckpt(tmp_path, zoo.build("mlp", sizes=(64, 6, 10), seed=s), f"m{s}.pt")
           for s in (0, 1)]
    cli = _cli(tmp_path, ["lmc", *cks, "--data", "digits", "--samples", "80", "--steps", "5",
                          "--matching", "weights", "--seed", "1"])
    api = lmc(load_model(cks[0]), load_model(cks[1]), load_data("digits", seed=1), samples=80,
              steps=5, matching="weights", seed=1, progress=False)
    assert len(cli.t) >= 5
    assert assert_same(cli.to_dict(), api.to_dict(), rtol=1e-6) > 20


def test_esd_cli_equals_api(tmp_path):
    from analyses.esd.api import esd

    model = zoo.build("mlp", sizes=(64, 48, 32, 10), seed=0)
    ck = _ckpt(tmp_path, model)
    cli = _cli(tmp_path, ["esd", ck, "--randomize", "--seed", "4"])
    api = esd(load_model(ck), randomize=True, seed=4, progress=False)
    assert len(cli.layers) == 3
    assert assert_same(cli.to_dict(), api.to_dict()) > 100


def test_attention_cli_equals_api(tmp_path):
    from analyses.attention.api import attention

    ck = _ckpt(tmp_path, zoo.build("vit", dim=16, depth=2, heads=2, seed=0))
    cli = _cli(tmp_path, ["attention", ck, "--data", "digits", "--samples", "8", "--index", "3",
                          "--discard-ratio", "0.3", "--seed", "5"])
    api = attention(load_model(ck), load_data("digits", seed=5), samples=8, index=3,
                    discard_ratio=0.3, seed=5, progress=False)
    assert np.asarray(cli.rollout["map"]).shape == (4, 4)
    assert assert_same(cli.to_dict(), api.to_dict()) > 100
