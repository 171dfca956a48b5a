"""ESD command line, figures and the alpha-vs-accuracy helper."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses.esd import esd
from analyses.esd.quality import alpha_vs_quality
from inspect_kit.testing import assert_untouched

KEYS = {"name", "shape", "alpha", "alpha_ci", "xmin", "D", "num_tail", "alpha_hat", "log_norm",
        "log_spectral_norm", "stable_rank", "mp_softrank", "num_spikes", "detx_num", "erg_gap",
        "skip_reason"}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 80), nn.ReLU(), nn.Linear(80, 60), nn.ReLU(),
                         nn.Linear(60, 3), nn.Conv1d(4, 8, 3))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_cli_writes_json_with_the_required_keys_and_a_figure(tmp_path, suffix):
    from safetensors.torch import save_file

    from inspect_kit.cli import main

    net = _net()
    path = tmp_path / f"w{suffix}"
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    if suffix == ".pt":
        torch.save(sd, path)
    else:
        save_file(sd, str(path))
    out, png = tmp_path / "esd.json", tmp_path / "esd.png"
    assert main(["esd", str(path), "--json", str(out), "--plot", str(png)]) == 0
    data = json.loads(out.read_text())["result"]
    assert data["provenance"]["seconds"] > 0 and len(data["layers"]) == 4
    for row in data["layers"]:
        assert KEYS <= set(row)
    assert png.stat().st_size > 10_000
    # compat mode and the WeightWatcher backend from the CLI
    out2 = tmp_path / "ww.json"
    assert main(["esd", str(path), "--method", "compat", "--backend", "weightwatcher",
                 "--json", str(out2)]) == 0
    cmp = json.loads(out2.read_text())["result"]["reference"]["comparison"]
    assert cmp and all(c["delta_alpha"] <= 1e-8 for c in cmp)


def test_cli_bad_checkpoint_is_a_clean_error(tmp_path, capsys):
    from inspect_kit.cli import main

    bad = tmp_path / "nope.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["esd", str(bad), "--json", str(tmp_path / "o.json")]) == 2
    assert not (tmp_path / "o.json").exists()


def test_figures(tmp_path):
    from inspect_kit.io import save_figure
    from plotting import style
    from plotting.esd import plot_alpha_snapshots, plot_alphas, plot_esd, plot_quality

    net = _net()
    with assert_untouched(net):
        res = esd(net, progress=False)
    fig = plot_esd(res, "0.weight")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "eigenvalue" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("power law" in t for t in labels) and any("MP" in t for t in labels)
    save_figure(fig, tmp_path / "esd.png")
    style.close(fig)
    fig = plot_alphas(res)
    assert len(fig.axes[0].patches) >= 3
    save_figure(fig, tmp_path / "alphas.png")
    style.close(fig)
    snaps = [esd(nn.Sequential(nn.Linear(40, 80), nn.Linear(80, 60)), progress=False)
             for _ in range(3)]
    fig = plot_alpha_snapshots(snaps, steps=[0, 10, 20])
    save_figure(fig, tmp_path / "snap.png")
    style.close(fig)
    q = alpha_vs_quality(snaps, [0.5, 0.6, 0.7], labels=["a", "b", "c"])
    fig = plot_quality(q)
    save_figure(fig, tmp_path / "q.png")
    style.close(fig)


def test_alpha_vs_quality_correlations():
    class Fake:
        def __init__(self, a: float, ah: float) -> None:
            self.summary = {"mean_alpha": a, "mean_alpha_hat": ah, "mean_log_norm": 1.0,
                            "mean_log_spectral_norm": math.nan}

    acc = [0.9, 0.8, 0.7, 0.6]
    q = alpha_vs_quality([Fake(a, 10 - a) for a in (2.0, 3.0, 4.5, 7.0)], acc)
    assert q.spearman["mean_alpha"] == pytest.approx(-1.0)
    assert q.spearman["mean_alpha_hat"] == pytest.approx(1.0)
    x, y = np.array([2.0, 3.0, 4.5, 7.0]), np.array(acc)
    assert q.pearson["mean_alpha"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(q.pearson["mean_log_norm"])  # constant: undefined
    assert len(q.wide_frame()) == 4


def test_cli_alpha_over_training_snapshots(tmp_path, capsys):
    """``--snapshots``: every stored snapshot analysed (same numbers as esd() on that state
    dict) and the figure written; a checkpoint without snapshots is refused before any output."""
    from inspect_kit.checkpoints import load_checkpoint
    from inspect_kit.cli import main

    ckpt = tmp_path / "m.pt"
    assert main(["train", "mlp", "--data", "digits", "--epochs", "2", "--snapshot-every", "1",
                 "--out", str(ckpt)]) == 0
    capsys.readouterr()
    png, js = tmp_path / "snaps.png", tmp_path / "esd.json"
    assert main(["esd", str(ckpt), "--snapshots", str(png), "--json", str(js)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("snapshot")]
    traj = load_checkpoint(ckpt).trajectory
    assert len(printed) == len(traj) >= 2
    for line, sd in zip(printed, traj):
        assert line.endswith(f"{esd(sd, progress=False).summary['mean_alpha']:.3f}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and js.exists()

    plain = tmp_path / "plain.pt"
    torch.save(_net().state_dict(), plain)
    out = tmp_path / "o.json"
    assert main(["esd", str(plain), "--snapshots", str(tmp_path / "s.png"), "--json", str(out)]) == 2
    assert "snapshot-every" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "s.png").exists()
