"""Rank files left by an interrupted multi-process landscape run, resumed by one process."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from analyses.landscape.api import landscape
from inspect_kit.testing import assert_untouched

KW = dict(dims=2, steps=5, engine="loop", seed=2, progress=False)


def test_one_process_merges_rank_files_and_removes_them(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    X, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    full = landscape(net, (X, y), resume=tmp_path / "ref.json", **KW)
    fp = json.loads((tmp_path / "ref.json").read_text())["fingerprint"]
    # what two interrupted ranks would have left: disjoint finished points (sentinels)
    for r, done in enumerate(([0, 1, 2], [20, 21])):
        loss = [10.0 + i if i in done else None for i in range(25)]
        acc = [0.5 if i in done else None for i in range(25)]
        (tmp_path / f"p.json.rank{r}").write_text(
            json.dumps({"fingerprint": fp, "loss": loss, "accuracy": acc}))
    with assert_untouched(net):
        res = landscape(net, (X, y), resume=tmp_path / "p.json", **KW)
    got, ref = res.loss.ravel(), full.loss.ravel()
    for i in range(25):
        assert got[i] == (10.0 + i if i in (0, 1, 2, 20, 21) else ref[i])
    assert res.meta["resumed_points"] == 5
    assert not list(tmp_path.glob("p.json.rank*"))
    saved = json.loads((tmp_path / "p.json").read_text())
    np.testing.assert_array_equal(np.asarray(saved["loss"], float), got)
