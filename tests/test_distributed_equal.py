"""1 process vs 2 processes (Gloo on loopback): Hessian, trace, landscape grid and LMC curves.

Two ranks are forked once per module (``torch.multiprocessing``, Gloo on 127.0.0.1 and a free
port); each runs the analyses on a trained digits MLP and pickles what it got. The truths: the
same analysis in this (single) process, and the dense Hessian of :mod:`analyses.hessian.exact`.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from inspect_kit import distributed as D
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import main
from inspect_kit.data import load_data
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build
from inspect_kit.zoo.train import fit

SIZES = (64, 32, 32, 10)
SENTINEL = 7.0
HKW = dict(top_k=2, trace=True, trace_budget=20, density=True, density_probes=2,
           density_steps=20, dtype=torch.float64, seed=3, progress=False)
DENSE = "layers.4.*"  # the dense check on the last layer's 330 parameters (fast)
LKW = dict(dims=2, steps=5, engine="loop", seed=1, progress=False)


def _data(n: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    b = load_data("digits")
    return b.x_train[:n], b.y_train[:n]


def _model(state: dict) -> torch.nn.Module:
    m = build("mlp", sizes=SIZES)
    m.load_state_dict(state)
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_all(model_a, model_b, data, tmp: Path, count: dict) -> dict:
    """What both the single process and every rank compute (``count`` gets collective counts)."""
    from analyses.hessian.api import hessian
    from analyses.hessian.operator import HessianOperator
    from analyses.landscape.api import landscape
    from analyses.lmc.api import lmc

    out = {}
    # count the top-level local products and the real torch.distributed.all_reduce calls
    calls = {"matvec": 0, "all_reduce": 0}
    orig_mv, orig_ar = HessianOperator.matvec, D.dist.all_reduce

    def mv(self, v):
        calls["matvec"] += 1
        return orig_mv(self, v)

    def ar(*a, **k):
        calls["all_reduce"] += 1
        return orig_ar(*a, **k)

    HessianOperator.matvec, D.dist.all_reduce = mv, ar
    try:
        with assert_untouched(model_a):
            res = hessian(model_a, data, **HKW)
    finally:
        HessianOperator.matvec, D.dist.all_reduce = orig_mv, orig_ar
    count.update(calls)
    out["eig"], out["trace"] = res.eigenvalues, res.trace
    out["density_nodes"] = res.density["nodes"]
    out["n_samples"], out["hvp_count"] = res.n_samples, res.hvp_count

    op = HessianOperator(model_a, data, dtype=torch.float64, include=DENSE)
    out["dense"] = op.to_dense(chunk=512).numpy()

    with assert_untouched(model_a):
        ls = landscape(model_a, data, resume=tmp / "ls.json", **LKW)
    out["grid"], out["grid_acc"] = ls.loss, ls.accuracy
    with assert_untouched(model_a), assert_untouched(model_b):
        lm = lmc(model_a, model_b, data, steps=7, layerwise=True, progress=False)
    out["lmc_t"], out["lmc_loss"] = lm.t, lm.loss
    out["layerwise"] = lm.layerwise["barrier_mean"]
    return out


def _worker(local_rank: int, port: int, tmp: str, sa: dict, sb: dict) -> None:
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert D.setup(backend="gloo")
    try:
        count: dict = {}
        out = _run_all(_model(sa), _model(sb), _data(), Path(tmp), count)
        out["count"] = count
        # a block of 5 probes: one all-reduce; a single vector: one all-reduce
        from analyses.hessian.operator import HessianOperator

        op = HessianOperator(_model(sa), _data(), dtype=torch.float64)
        before = D.CALLS["all_reduce"]
        op.matvec(torch.ones(op.n, dtype=torch.float64))
        op.matvec(torch.ones(5, op.n, dtype=torch.float64))
        out["block_all_reduces"] = D.CALLS["all_reduce"] - before
        out["rank_files_left"] = sorted(p.name for p in Path(tmp).glob("ls.json.rank*"))
        # resume from a partial file: finished points hold sentinels that must survive
        from analyses.landscape.api import landscape

        res = landscape(_model(sa), _data(), resume=Path(tmp) / "resume.json", **LKW)
        out["resumed_grid"], out["resumed_points"] = res.loss, res.meta["resumed_points"]
        # the command line inside the group: rank 0 writes the JSON
        from inspect_kit.cli import main

        out["cli_status"] = main(["hessian", str(Path(tmp) / "a.pt"), "--data", "digits",
                                  "--json", str(Path(tmp) / "cli.json"), "--top-k", "2",
                                  "--dtype", "float64"])
        with open(Path(tmp) / f"rank{local_rank}.pkl", "wb") as f:
            pickle.dump(out, f)
    finally:
        D.teardown()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.manual_seed(0)
    X, y = _data()
    a, b = build("mlp", sizes=SIZES), build("mlp", sizes=SIZES)
    fit(a, (X, y), epochs=2, seed=0, progress=False)
    fit(b, (X, y), epochs=2, seed=1, progress=False)
    sa = {k: v.clone() for k, v in a.state_dict().items()}
    sb = {k: v.clone() for k, v in b.state_dict().items()}
    single_dir = tmp_path_factory.mktemp("one_rank")
    single = _run_all(_model(sa), _model(sb), _data(), single_dir, {})
    multi = tmp_path_factory.mktemp("two_ranks")
    saved = json.loads((single_dir / "ls.json").read_text())
    done = list(range(0, 25, 3))  # every third point finished, with a sentinel value
    saved["loss"] = [SENTINEL if i in done else None for i in range(25)]
    del saved["checksum"]  # a hand-made file (a kit-written one is refused once edited)
    saved["accuracy"] = [0.5 if i in done else None for i in range(25)]
    (multi / "resume.json").write_text(json.dumps(saved))
    save_checkpoint(_model(sa), multi / "a.pt")
    assert main(["hessian", str(multi / "a.pt"), "--data", "digits", "--json",
                 str(single_dir / "cli.json"), "--top-k", "2", "--dtype", "float64"]) == 0
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(multi), sa, sb),
                                          nprocs=2, start_method="fork", join=True)
    ranks = [pickle.loads((multi / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    return {"single": single, "ranks": ranks, "multi_dir": multi, "sa": sa, "done": done,
            "single_dir": single_dir}


def test_eigenvalues_and_trace_match_one_process(runs):
    s, r0, r1 = runs["single"], *runs["ranks"]
    np.testing.assert_allclose(r0["eig"], s["eig"], rtol=1e-6, atol=1e-9)
    assert math.isclose(r0["trace"], s["trace"], rel_tol=1e-6)
    np.testing.assert_allclose(r0["density_nodes"], s["density_nodes"], rtol=1e-6, atol=1e-9)
    # every rank took the same steps and got the same numbers
    np.testing.assert_array_equal(r0["eig"], r1["eig"])
    assert r0["trace"] == r1["trace"] and r0["hvp_count"] == r1["hvp_count"] == s["hvp_count"]
    assert r0["n_samples"] == s["n_samples"] == 600


def test_data_parallel_product_is_the_dense_hessian(runs):
    from analyses.hessian.exact import dense_hessian

    X, y = _data()
    truth = dense_hessian(_model(runs["sa"]), (X, y), include=DENSE).matrix.numpy()
    for r in runs["ranks"]:
        np.testing.assert_allclose(r["dense"], truth, rtol=1e-9, atol=1e-10)


def test_one_all_reduce_per_product(runs):
    for r in runs["ranks"]:
        c = r["count"]
        # one per product, plus one for the finite-loss check at the trained point
        assert c["matvec"] > 10 and c["all_reduce"] == c["matvec"] + 1
        assert r["block_all_reduces"] == 2


def test_landscape_grid_matches_and_rank_files_are_merged(runs):
    s, r0, r1 = runs["single"], *runs["ranks"]
    np.testing.assert_allclose(r0["grid"], s["grid"], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(r0["grid"], r1["grid"])
    np.testing.assert_array_equal(r0["grid_acc"], s["grid_acc"])
    saved = json.loads((runs["multi_dir"] / "ls.json").read_text())
    np.testing.assert_array_equal(np.asarray(saved["loss"]).reshape(5, 5), r0["grid"])
    assert r0["rank_files_left"] == [] or r1["rank_files_left"] == []


def test_lmc_curves_match_one_process(runs):
    s, r0, r1 = runs["single"], *runs["ranks"]
    np.testing.assert_array_equal(r0["lmc_t"], s["lmc_t"])
    for split in s["lmc_loss"]:
        np.testing.assert_allclose(r0["lmc_loss"][split], s["lmc_loss"][split], rtol=1e-6)
        np.testing.assert_array_equal(r0["lmc_loss"][split], r1["lmc_loss"][split])
    for split, v in s["layerwise"]["loss"].items():
        np.testing.assert_allclose(r0["layerwise"]["loss"][split], v, rtol=1e-5, atol=1e-7)


def test_single_process_is_untouched_by_the_module():
    from inspect_kit.view import ModelView, make_view

    assert not D.is_distributed() and D.world_size() == 1 and D.is_main()
    assert type(make_view(_model(build("mlp", sizes=SIZES).state_dict()), _data(10))) is ModelView
    t = torch.arange(3.0)
    assert D.all_reduce_sum(t) is t


@pytest.mark.parametrize("n,w,bs", [(10, 2, None), (10, 3, None), (10, 3, 2), (7, 2, 3)])
def test_shards_cover_every_sample_once(n, w, bs):
    X = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    y = torch.arange(n)
    from inspect_kit.view.batches import to_batches
    from inspect_kit.view.distributed import shard_batches

    got = []
    for r in range(w):
        mine = shard_batches(to_batches((X, y), batch_size=bs), r, w)
        got += [int(v) for b in mine for v in b.target]
    assert got == list(range(n))


def test_resume_keeps_finished_points_and_splits_the_rest(runs):
    s, r0, r1 = runs["single"], *runs["ranks"]
    flat = s["grid"].ravel()
    for r in (r0, r1):
        got = r["resumed_grid"].ravel()
        assert r["resumed_points"] == len(runs["done"])
        for i in range(25):
            assert got[i] == (SENTINEL if i in runs["done"] else flat[i])


def test_cli_inside_the_group_matches_one_process(runs):
    assert [r["cli_status"] for r in runs["ranks"]] == [0, 0]
    one = json.loads((runs["single_dir"] / "cli.json").read_text())["result"]
    two = json.loads((runs["multi_dir"] / "cli.json").read_text())["result"]
    np.testing.assert_allclose(two["eigenvalues"], one["eigenvalues"], rtol=1e-6)
    assert two["n_samples"] == one["n_samples"]
