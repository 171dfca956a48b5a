"""The ``ntk`` command line (JSON loads back as the Result, the .npy kernel, exit status 2 on bad
options) and the figures (built from a Result, also one loaded from JSON)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from analyses.ntk import NTKResult, ntk
from inspect_kit.results import Result
from plotting import ntk as pn


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.zoo import build

    d = tmp_path_factory.mktemp("ntk")
    save_checkpoint(build("mlp", sizes=(64, 8, 10), seed=0), d / "a.pt")
    save_checkpoint(build("mlp", sizes=(64, 8, 10), seed=1), d / "b.pt")
    return d


def test_cli_json_loads_back_and_kernel_file(ckpts, tmp_path, capsys):
    from inspect_kit.cli import main

    out, fig, npy = tmp_path / "n.json", tmp_path / "n.png", tmp_path / "k.npy"
    rc = main(["ntk", str(ckpts / "a.pt"), "--data", "digits", "--samples", "60", "--kernel",
               "full", "--top-k", "3", "--compare", str(ckpts / "b.pt"), "--ggn-check",
               "--dtype", "float64", "--json", str(out), "--plot", str(fig), "--kernel-out",
               str(npy), "--no-progress"])
    assert rc == 0 and fig.stat().st_size > 0
    back = Result.load(out)
    assert isinstance(back, NTKResult) and back.kernel is None  # 60^2 10^2 entries: .npy only
    K = np.load(npy)
    assert K.shape == (60, 60, 10, 10)
    M = K.transpose(0, 2, 1, 3).reshape(600, 600)
    np.testing.assert_allclose(back.eigenvalues, np.linalg.eigvalsh(M)[::-1][:3], rtol=1e-10)
    assert back.change is not None and back.ggn["max_relative_difference"] < 1e-8
    assert back.provenance["options"]["samples"] == 60
    text = capsys.readouterr().out
    assert "eigenvalues:" in text and "GGN check" in text and "alignment" in text


def test_cli_bad_options_exit_2(ckpts, tmp_path):
    from inspect_kit.cli import main

    base = ["ntk", str(ckpts / "a.pt"), "--data", "digits", "--samples", "20"]
    assert main(base + ["--top-k", "-1"]) == 2
    assert main(base + ["--kernel-out", str(tmp_path / "k.txt")]) == 2
    assert main(base + ["--memory", "nothing"]) == 2
    assert main(base + ["--kernel", "full", "--memory", "1KB", "--no-matrix-free"]) == 2


def test_figures_from_results_and_from_json(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    r = ntk(net, (x, y), kernel="full", top_k=4, compare=nn.Linear(3, 2), ggn_check=True,
            dtype="float64", samples=None, progress=False)
    for fn in (pn.plot_kernel, pn.plot_spectrum, pn.plot_ggn, pn.plot_ntk):
        fig = fn(r)
        assert all(ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>")
        plt.close(fig)
    assert len(pn.plot_ntk(r).axes) == 4  # kernel + colorbar, spectrum, ggn
    r.save(tmp_path / "r.json")
    back = NTKResult.load(tmp_path / "r.json")
    fig = pn.plot_kernel(back)
    img = fig.axes[0].get_images()[0].get_array()
    order = np.argsort(y.numpy(), kind="stable")
    np.testing.assert_allclose(img, np.einsum("ijaa->ij", r.kernel)[np.ix_(order, order)])
    plt.close(fig)
    free = ntk(net, (x, y), matrix_free=True, top_k=2, samples=None, progress=False)
    with pytest.raises(Exception, match="no kernel"):
        pn.plot_kernel(free)
    assert len(pn.plot_ntk(free).axes) == 1
