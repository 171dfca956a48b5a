"""The ``hessian`` CLI (JSON keys the issue lists) and the figures (built from a Result)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from analyses.hessian import hessian
from inspect_kit.testing import assert_untouched
from plotting import hessian as ph


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(2)
    data = torch.randn(80, 4, generator=g), torch.randint(0, 3, (80,), generator=g)
    with assert_untouched(model):
        res = hessian(model, data, top_k=3, which="both", density=True, density_probes=5,
                      density_steps=30, blocks="layer", progress=False)
    return model, data, res


def test_cli_json_has_the_issue_keys(tmp_path, capsys):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main
    from inspect_kit.zoo import build

    ckpt = tmp_path / "m.pt"
    save_checkpoint(build("mlp", sizes=(64, 3, 10)), ckpt)
    out, fig = tmp_path / "h.json", tmp_path / "h.png"
    rc = main(["hessian", str(ckpt), "--data", "digits", "--split", "test", "--top-k", "2",
               "--which", "both",
               "--trace", "--budget", "30", "--density", "--probes", "5", "--blocks",
               "--json", str(out), "--plot", str(fig)])
    assert rc == 0 and fig.stat().st_size > 0
    d = json.loads(out.read_text())["result"]
    for key in ("eigenvalues", "residuals", "converged", "trace", "trace_stderr", "density",
                "blocks", "hvp_count"):
        assert key in d, key
    assert d["eigenvalues"] == sorted(d["eigenvalues"], reverse=True)
    assert len(d["eigenvalues"]) == len(d["residuals"]) == len(d["converged"]) == 4
    for key in ("nodes", "weights", "grid", "values"):
        assert key in d["density"]
    assert d["hvp_count"] > 0
    assert "lambda" in capsys.readouterr().out


def test_cli_bad_option_exits_2(tmp_path, capsys):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main
    from inspect_kit.zoo import build

    ckpt = tmp_path / "m.pt"
    save_checkpoint(build("mlp", sizes=(64, 6, 10)), ckpt)
    assert main(["hessian", str(ckpt), "--data", "digits", "--budget", "1"]) == 2


@pytest.mark.parametrize("scale", ["linear", "log", "symlog"])
def test_density_plot(small, scale):
    _, _, res = small
    exact = np.linspace(-0.1, 1.0, 50)
    fig = ph.plot_density(res, scale=scale, exact=exact if scale == "linear" else None)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("eigenvalue") and ax.get_ylabel().startswith("density")
    assert len(ax.get_legend().get_texts()) == (2 if scale == "linear" else 1)
    plt.close(fig)


def test_eigen_block_and_summary_plots(small):
    _, _, res = small
    for fn in (ph.plot_eigenvalues, ph.plot_blocks, ph.plot_log_density, ph.plot_hessian):
        fig = fn(res)
        assert all(ax.get_xlabel() or not ax.axison for ax in fig.axes)
        plt.close(fig)
    nodens = hessian(small[0], small[1], top_k=1, trace=False, progress=False)
    with pytest.raises(Exception, match="density=True"):
        ph.plot_density(nodens)
