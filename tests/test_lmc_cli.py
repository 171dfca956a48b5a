"""``inspect-kit lmc`` in-process: JSON keys, figure, clear errors (exit status 2)."""

from __future__ import annotations

import json

from inspect_kit import zoo
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import main


def _pair(tmp_path, sizes=(64, 16, 10)):
    paths = []
    for s in (0, 1):
        p = tmp_path / f"m{s}.pt"
        save_checkpoint(zoo.build("mlp", sizes=sizes, seed=s), p)
        paths.append(str(p))
    return paths


def test_cli_writes_json_and_plot(tmp_path):
    a, b = _pair(tmp_path)
    out, fig = tmp_path / "lmc.json", tmp_path / "lmc.png"
    code = main(["lmc", a, b, "--data", "digits", "--matching", "weights", "--repair",
                 "--layerwise", "--steps", "5", "--json", str(out), "--plot", str(fig)])
    assert code == 0
    d = json.loads(out.read_text())["result"]
    for key in ("t", "loss", "error", "barrier_mean", "barrier_linear", "aligned", "layerwise"):
        assert key in d, key
    assert set(d["barrier_mean"]) == {"loss", "error"}
    assert d["aligned"]["method"] == "weights" and d["aligned"]["max_abs_delta_logit"] < 1e-4
    assert d["repair"]["layers"] == ["layers.0"]
    assert fig.stat().st_size > 10_000


def test_cli_mismatch_is_a_one_line_error(tmp_path, capsys):
    a, _ = _pair(tmp_path)
    p = tmp_path / "other.pt"
    save_checkpoint(zoo.build("mlp", sizes=(64, 8, 10), seed=3), p)
    out = tmp_path / "x.json"
    code = main(["lmc", a, str(p), "--data", "digits", "--json", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "layers.0.weight" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
