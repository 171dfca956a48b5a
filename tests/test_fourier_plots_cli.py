"""`inspect-kit train modadd` + `inspect-kit fourier`: the JSON loads back, the trajectory comes from
the checkpoint's snapshots, and every figure draws exactly the Result's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from analyses.fourier import FourierResult
from inspect_kit.checkpoints import load_checkpoint
from inspect_kit.cli import main
from inspect_kit.errors import OptionError
from plotting import style
from plotting.fourier import (
    KEY_COLOR,
    neuron_order,
    plot_logit_spectrum,
    plot_neurons,
    plot_spectrum,
    plot_summary,
    plot_training,
    training_curves,
)

DATA = "modadd:11:0.5"


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fourier")
    ck = d / "modadd.pt"
    assert main(["train", "modadd", "--data", DATA, "--epochs", "30", "--snapshot-every", "10",
                 "--weight-decay", "0.5", "--model-kwargs", '{"d": 8, "width": 16}',
                 "--out", str(ck)]) == 0
    assert main(["fourier", str(ck), "--data", DATA, "--json", str(d / "f.json"),
                 "--plot", str(d / "f.png"), "--no-progress"]) == 0
    return d, ck, FourierResult.load(d / "f.json")


def test_cli_json_round_trip_with_checkpoint_trajectory(cli_run, capsys):
    d, ck, res = cli_run
    meta = load_checkpoint(ck).meta["extra"]["train"]
    assert meta["weight_decay"] == 0.5 and meta["final"]["train_acc"] > 0.2
    assert list(res.trajectory["epoch"]) == meta["snapshot_epochs"] == [0, 10, 20, 30]
    assert res.p == 11 and res.provenance["analysis"] == "fourier"
    assert res.options["split"] == "both" and set(res.metrics) == {"train", "test", "all"}
    assert (d / "f.png").read_bytes().startswith(b"\x89PNG")
    assert main(["fourier", str(ck), "--data", DATA, "--no-trajectory", "--split", "train",
                 "--key-frequencies", "2,3", "--json", str(d / "g.json")]) == 0
    g = FourierResult.load(d / "g.json")
    assert g.trajectory is None and g.key_frequencies == (2, 3) and list(g.metrics) == ["train"]
    assert "key frequencies [2, 3]" in capsys.readouterr().out
    assert main(["fourier", str(ck), "--data", DATA, "--key-frequencies", "x"]) == 2
    assert main(["fourier", str(ck), "--data", DATA, "--operands", "0"]) == 2


def test_spectrum_bars_are_the_embedding_norms(cli_run):
    res = cli_run[2]
    ax = plot_spectrum(res).axes[0]
    bars = ax.patches
    np.testing.assert_allclose([b.get_height() for b in bars], res.embedding_spectrum[1:])
    coloured = [i + 1 for i, b in enumerate(bars) if to_hex(b.get_facecolor()) == KEY_COLOR]
    assert coloured == list(res.key_frequencies)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), res.unembedding_spectrum[1:])


def test_neuron_map_and_logit_spectrum_show_the_result(cli_run):
    res = cli_run[2]
    img = plot_neurons(res).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(img, res.neuron_fractions[neuron_order(res), 1:])
    freq = res.neuron_frequency[neuron_order(res)]
    assert (np.diff(freq) >= 0).all()
    shown = plot_logit_spectrum(res).axes[0].get_images()[0].get_array()
    floor = max(res.logit_spectrum.max() * 1e-5, 1e-12)
    np.testing.assert_allclose(shown, np.clip(res.logit_spectrum, floor, None))


def test_training_figure_draws_the_trajectory(cli_run):
    res = cli_run[2]
    fig = plot_training(res)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    curves = training_curves(res)
    assert set(lines) == set(curves) and "restricted loss (all pairs)" in lines
    for label, (_values, key) in curves.items():
        np.testing.assert_allclose(lines[label].get_xdata(), res.trajectory["epoch"])
        np.testing.assert_allclose(lines[label].get_ydata(), np.clip(res.trajectory[key], 1e-8,
                                                                      None))
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), res.trajectory["key_share"])
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(),
                               res.trajectory["weight_norm"])
    assert len(plot_summary(res).axes) >= 6  # 3 panels (+2 colour bars) and 2 training axes
    style.close(fig)


def test_figures_refuse_missing_parts(cli_run):
    import dataclasses

    res = dataclasses.replace(cli_run[2], trajectory=None, neuron_fractions=None,
                              neuron_frequency=None, neuron_purity=None, neuron_spectrum=None)
    with pytest.raises(OptionError, match="trajectory"):
        plot_training(res)
    with pytest.raises(OptionError, match="neurons"):
        plot_neurons(res)
    assert len(plot_summary(res).axes) == 3  # spectrum, logits and its colour bar
