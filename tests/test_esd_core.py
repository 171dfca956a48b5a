"""ESD core: power-law fit vs closed forms / powerlaw 2.0 / WeightWatcher's WWFit, MP edge, KDE,
detX, guards, matrix extraction (every >= 2-D parameter) vs dense numpy spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses.esd import esd
from analyses.esd import metrics as M
from analyses.esd import powerlaw as PL
from analyses.esd.matrices import layer_matrices
from inspect_kit.errors import InspectKitError
from inspect_kit.testing import assert_untouched

ww_powerlaw = pytest.importorskip("weightwatcher.WW_powerlaw")


def pareto(n: int, alpha: float, xmin: float = 1.0, seed: int = 0) -> np.ndarray:
    """Samples of the continuous power law p(x) ~ x^-alpha, x >= xmin (inverse CDF)."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1 - u) ** (-1 / (alpha - 1))


# ---------------------------------------------------------------------------------- power law


def test_mle_on_pareto_samples_recovers_alpha_and_ci_covers_it():
    x = pareto(4000, 2.5, seed=1)
    fit = PL.fit_power_law(x, exact=False)
    se = (2.5 - 1) / math.sqrt(fit.n_tail)
    assert abs(fit.alpha - 2.5) < 4 * se
    assert fit.xmin < 3.0  # the search keeps most of a pure power law
    # closed form at the chosen xmin
    tail = np.sort(x)[np.sort(x) >= fit.xmin]
    assert fit.alpha == pytest.approx(1 + len(tail) / np.sum(np.log(tail / fit.xmin)), rel=1e-12)
    lo, hi = PL.bootstrap_ci(x, fit, n_boot=400, level=0.9, seed=0)
    assert lo < fit.alpha < hi
    # fixed-xmin bootstrap width ~ 2 * 1.645 * sigma
    assert (hi - lo) == pytest.approx(2 * 1.645 * fit.sigma, rel=0.3)


def test_xmin_found_at_the_start_of_a_planted_tail():
    rng = np.random.default_rng(3)
    bulk = rng.uniform(0.1, 1.0, 3000)
    tail = pareto(600, 3.0, xmin=2.0, seed=4)
    fit = PL.fit_power_law(np.concatenate([bulk, tail]), exact=False)
    assert 1.5 <= fit.xmin <= 3.0
    assert abs(fit.alpha - 3.0) < 4 * 2.0 / math.sqrt(fit.n_tail)


@pytest.mark.parametrize("n, seed", [(10, 0), (15, 1), (19, 2), (20, 3), (64, 4), (700, 5)])
def test_fit_matches_weightwatcher_wwfit(n, seed, capsys):
    x = np.sort(np.random.default_rng(seed).lognormal(0, 1.2, n))
    ref = ww_powerlaw.WWFit(x)
    for exact in (True, False):
        fit = PL.fit_power_law(x, exact=exact)
        assert fit.xmin == ref.xmin
        assert abs(fit.alpha - ref.alpha) <= 1e-8
        assert abs(fit.D - ref.D) <= 1e-8
        assert abs(fit.sigma - ref.sigma) <= 1e-8
    capsys.readouterr()


def test_ties_at_the_top_behave_as_wwfit():
    x = np.sort(np.concatenate([np.random.default_rng(0).lognormal(0, 1, 60), [50.0] * 5]))
    ref = ww_powerlaw.WWFit(x)
    for exact in (True, False):
        fit = PL.fit_power_law(x, exact=exact)
        assert fit.xmin == ref.xmin and abs(fit.alpha - ref.alpha) <= 1e-8


def test_fit_matches_powerlaw_package_with_open_alpha_range():
    powerlaw = pytest.importorskip("powerlaw")
    x = pareto(800, 2.2, seed=7) + np.random.default_rng(8).uniform(0, 0.5, 800)
    ref = powerlaw.Fit(x, parameter_ranges={"alpha": [1, None]}, verbose=False)
    fit = PL.fit_power_law(x, exact=False)
    assert fit.xmin == pytest.approx(ref.xmin, rel=1e-12)
    assert fit.alpha == pytest.approx(ref.alpha, abs=1e-6)
    assert fit.D == pytest.approx(ref.D, abs=1e-6)


def test_degenerate_orthogonal_matrix_is_flagged_not_absurd():
    q, _ = torch.linalg.qr(torch.randn(128, 128, dtype=torch.float64))
    lin = nn.Linear(128, 128)
    with torch.no_grad():
        lin.weight.copy_(q.float())
    with assert_untouched(lin):
        res = esd(lin, method="compat", progress=False)
    row = res.row("weight")
    assert row["alpha_raw"] > 1e5  # what an unguarded MLE returns (WeightWatcher: ~1e15)
    assert math.isnan(row["alpha"]) and "orthogonal" in row["flag"]
    assert res.summary["n_flagged"] == 1 and math.isnan(res.summary["mean_alpha"])


# ---------------------------------------------------------------------------------- metrics


def test_linear_kde_matches_sklearn():
    from sklearn.neighbors import KernelDensity

    x = np.random.default_rng(0).gamma(2.0, 0.5, 300)
    grid = np.linspace(0, x.max() + 0.5, 1000)
    ref = np.exp(KernelDensity(kernel="linear", bandwidth=0.1).fit(x[:, None]).score_samples(
        grid[:, None]))
    np.testing.assert_allclose(M.linear_kde(x, grid, 0.1), ref, atol=1e-10)


def test_mp_fit_finds_the_marchenko_pastur_edge_and_a_planted_spike():
    N, Mm = 2000, 500
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N, Mm, generator=g, dtype=torch.float64)
    ev = np.sort(torch.linalg.svdvals(W).numpy() ** 2)
    mp = M.mp_fit(ev, N, Mm)
    Q = N / Mm
    # rescaled to mean 1, a Gaussian matrix is MP with sigma = 1: edge (1 + Q^-1/2)^2
    assert mp["sigma_mp"] == pytest.approx(1.0, abs=0.05)
    edge = (1 + 1 / math.sqrt(Q)) ** 2 / mp["W_scale"] ** 2
    assert mp["bulk_max"] == pytest.approx(edge, rel=0.1)
    assert mp["num_spikes"] == 0
    u = torch.randn(N, 1, generator=g, dtype=torch.float64)
    v = torch.randn(1, Mm, generator=g, dtype=torch.float64)
    ev2 = np.sort(torch.linalg.svdvals(W + 0.5 * u @ v).numpy() ** 2)
    assert M.mp_fit(ev2, N, Mm)["num_spikes"] == 1


def test_detx_matches_weightwatcher_constraint():
    from weightwatcher.RMT_Util import detX_constraint, rescale_eigenvalues

    for seed in range(4):
        ev = np.sort(np.random.default_rng(seed).lognormal(0, 1.5, 300))
        k_ref, idx_ref = detX_constraint(ev, rescale=True)
        out = M.detx(ev, num_tail=40)
        assert out["detx_num"] == k_ref
        assert out["detx_val"] == ev[idx_ref]
        assert out["erg_gap"] == k_ref - 40
        lam, _ = rescale_eigenvalues(ev)
        assert out["detx_logsum"] == pytest.approx(np.sum(np.log(lam[idx_ref:])), abs=1e-9)
        assert out["detx_logsum"] < 0


def test_norm_metrics_closed_forms():
    W = torch.randn(40, 30, dtype=torch.float64)
    ev = np.sort(torch.linalg.svdvals(W).numpy() ** 2)
    m = M.norm_metrics(ev, 3.0)
    assert m["log_norm"] == pytest.approx(math.log10(float((W ** 2).sum())))
    assert m["log_spectral_norm"] == pytest.approx(2 * math.log10(float(torch.linalg.norm(W, 2))))
    assert m["stable_rank"] == pytest.approx(float((W ** 2).sum() / torch.linalg.norm(W, 2) ** 2))
    assert m["alpha_hat"] == pytest.approx(3.0 * m["log_spectral_norm"])


# ---------------------------------------------------------------------------------- matrices


class Zoo(nn.Module):
    """Attention, LSTM, GRU, Conv1d/2d/3d, a KAN layer, an embedding, bare parameters."""

    def __init__(self) -> None:
        super().__init__()
        from inspect_kit.zoo.kan import KANLayer

        torch.manual_seed(0)
        self.attn = nn.MultiheadAttention(16, 2)
        self.lstm = nn.LSTM(8, 12)
        self.gru = nn.GRU(8, 10)
        self.c1 = nn.Conv1d(8, 16, 3)
        self.c2 = nn.Conv2d(8, 16, 3)
        self.c3 = nn.Conv3d(4, 8, 3)
        self.kan = KANLayer(12, 10)
        self.emb = nn.Embedding(50, 16)
        self.pos = nn.Parameter(torch.randn(1, 20, 16))
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight  # tied
        self.a = nn.Linear(24, 24)
        self.b = nn.Linear(24, 24)
        self.b.load_state_dict(self.a.state_dict())  # equal copy


def _dense_evals(mats: list[torch.Tensor]) -> np.ndarray:
    return np.sort(np.concatenate([np.linalg.svd(m.double().numpy(), compute_uv=False) ** 2
                                   for m in mats]))


def test_every_parameter_of_two_or_more_dims_gets_a_row():
    model = Zoo()
    with assert_untouched(model):
        res = esd(model, method="compat", progress=False, mp_fit=False)
    params = {n for n, p in model.named_parameters() if p.dim() >= 2}
    rows = res.layers
    assert params <= {r["param"] for r in rows}
    for r in rows:
        assert r["status"] == "success" or r["skip_reason"] or r["flag"], r["name"]
    names = set(res.names)
    assert {"attn.in_proj_weight[q]", "attn.in_proj_weight[k]", "attn.in_proj_weight[v]",
            "lstm.weight_ih_l0[i]", "lstm.weight_hh_l0[o]", "gru.weight_hh_l0[n]",
            "kan.coef[basis]", "kan.coef[flat]", "kan.scale_base", "c1.weight", "c3.weight",
            "pos", "emb.weight"} <= names
    assert res.row("cls")["skip_reason"]  # a 16-vector once singleton axes are dropped
    assert res.row("head.weight")["duplicate_of"] == "emb.weight"
    assert res.row("b.weight")["duplicate_of"] == "a.weight"
    assert res.row("b.weight")["alpha"] == res.row("a.weight")["alpha"]


def test_extracted_spectra_equal_dense_numpy_spectra():
    model = Zoo()
    res = esd(model, method="compat", progress=False, mp_fit=False)
    E = 16
    w = model.attn.in_proj_weight.detach()
    np.testing.assert_allclose(res.evals("attn.in_proj_weight[k]"), _dense_evals([w[E:2 * E]]),
                               rtol=1e-5)
    h = model.lstm.weight_hh_l0.detach()
    np.testing.assert_allclose(res.evals("lstm.weight_hh_l0[f]"), _dense_evals([h[12:24]]),
                               rtol=1e-5)
    c3 = model.c3.weight.detach()
    taps = [c3[:, :, i, j, k] for i in range(3) for j in range(3) for k in range(3)]
    assert res.row("c3.weight")["rf"] == 27
    np.testing.assert_allclose(res.evals("c3.weight"), _dense_evals(taps), rtol=1e-5)
    coef = model.kan.coef.detach()  # (out, in, G+k)
    np.testing.assert_allclose(res.evals("kan.coef[flat]"),
                               _dense_evals([coef.reshape(coef.shape[0], -1)]), rtol=1e-5)
    np.testing.assert_allclose(res.evals("kan.coef[basis]"),
                               _dense_evals([coef[:, :, m] for m in range(coef.shape[2])]),
                               rtol=1e-5)
    # fast mode: float32 Gram route, same spectra up to float32 accuracy at the top
    fast = esd(model, progress=False, mp_fit=False)
    top = res.evals("kan.coef[basis]")[-5:]
    np.testing.assert_allclose(fast.evals("kan.coef[basis]")[-5:], top, rtol=1e-4)


def test_state_dict_and_files_give_the_same_rows(tmp_path):
    from safetensors.torch import save_file

    model = Zoo()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "m.pt")
    save_file({k: v.contiguous() for k, v in sd.items() if k != "head.weight"},
              str(tmp_path / "m.safetensors"))
    a = esd(model, progress=False, mp_fit=False, n_boot=0)
    b = esd(sd, progress=False, mp_fit=False, n_boot=0)
    from inspect_kit.checkpoints import load_checkpoint

    c = esd(load_checkpoint(tmp_path / "m.pt").state_dict, progress=False, mp_fit=False, n_boot=0)
    d = esd(load_checkpoint(tmp_path / "m.safetensors").state_dict, progress=False, mp_fit=False,
            n_boot=0)
    for name in ("attn.in_proj_weight[v]", "lstm.weight_ih_l0[g]", "c2.weight",
                 "kan.coef[flat]", "a.weight"):
        assert b.row(name)["alpha"] == a.row(name)["alpha"]
        assert c.row(name)["alpha"] == a.row(name)["alpha"]
        assert d.row(name)["alpha"] == a.row(name)["alpha"]


def test_conv_flat_option_and_bad_input():
    conv = nn.Conv1d(6, 12, 5)
    rows = layer_matrices(conv, conv="both")
    assert [r.name for r in rows] == ["weight", "weight[flat]"]
    assert rows[1].mats[0].shape == (12, 30)
    with pytest.raises(InspectKitError, match="method"):
        esd(conv, method="slow")
    with pytest.raises(InspectKitError, match="conv"):
        layer_matrices(conv, conv="sliced")
    with pytest.raises(InspectKitError, match="not a file path"):
        esd("/nonexistent/model.pt")
    bad = nn.Linear(20, 20)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    before = bad.weight.detach().clone()  # assert_untouched cannot compare NaN tensors
    row = esd(bad, progress=False).row("weight")
    assert torch.allclose(bad.weight, before, equal_nan=True)
    assert row["status"] == "skipped" and "non-finite" in row["skip_reason"]


def test_huge_side_uses_partial_top_k_eigenvalues():
    emb = nn.Embedding(300, 64)
    res = esd(emb, progress=False, max_evals=40, partial_k=30, mp_fit=False)
    row = res.row("weight")
    assert row["partial"] and row["n_evals"] == 64
    exact = _dense_evals([emb.weight.detach()])[-30:]
    np.testing.assert_allclose(res.evals("weight"), exact, rtol=2e-3)


def test_randomisation_is_seeded():
    lin = nn.Linear(60, 40)
    a = esd(lin, randomize=True, seed=3, progress=False).row("weight")
    b = esd(lin, randomize=True, seed=3, progress=False).row("weight")
    c = esd(lin, randomize=True, seed=4, progress=False).row("weight")
    assert a["max_rand_eval"] == b["max_rand_eval"]
    assert a["max_rand_eval"] != c["max_rand_eval"]


def test_result_round_trip(tmp_path):
    from analyses.esd.result import ESDResult

    res = esd(nn.Linear(30, 20), progress=False)
    res.save(tmp_path / "r.json")
    back = ESDResult.load(tmp_path / "r.json")
    assert back.layers[0]["alpha"] == pytest.approx(res.layers[0]["alpha"])
    assert len(back.wide_frame()) == 1


def test_pykan_and_efficient_kan_layouts():
    kan = pytest.importorskip("kan")
    layer = kan.KANLayer(9, 10, num=5, k=3)
    with assert_untouched(layer):
        res = esd(layer, method="compat", progress=False, mp_fit=False)
    assert "knot grid" in res.row("grid")["skip_reason"]
    assert "mask" in res.row("mask")["skip_reason"]
    coef = layer.coef.detach().permute(1, 0, 2)  # pykan stores (in, out, G+k)
    np.testing.assert_allclose(res.evals("coef[flat]"),
                               _dense_evals([coef.reshape(coef.shape[0], -1)]), rtol=1e-5)
    # efficient-kan KANLinear state dict: base_weight, spline_weight (out, in, G+k), spline_scaler
    g = torch.Generator().manual_seed(0)
    sd = {"layers.0.base_weight": torch.randn(12, 10, generator=g),
          "layers.0.spline_weight": torch.randn(12, 10, 8, generator=g),
          "layers.0.spline_scaler": torch.randn(12, 10, generator=g),
          "layers.0.grid": torch.linspace(-1, 1, 12).repeat(10, 1)}
    rows = {r.name: r for r in layer_matrices(sd)}
    assert rows["layers.0.spline_weight[basis]"].kind == "kan_coef_basis"
    assert len(rows["layers.0.spline_weight[basis]"].mats) == 8
    assert rows["layers.0.spline_weight[flat]"].mats[0].shape == (12, 80)
    assert rows["layers.0.base_weight"].kind == "kan_base_weight"
    assert rows["layers.0.grid"].skip_reason


def test_reused_workspace_buffers_give_each_matrix_its_own_spectrum():
    """Buffers reused across same-shape matrices (and a bfloat16 one) must not leak old values."""
    from analyses.esd import spectra

    g = torch.Generator().manual_seed(3)
    mats = [torch.randn(40, 130, generator=g) * s for s in (1.0, 0.1, 3.0)]
    mats.append(torch.randn(130, 40, generator=g).to(torch.bfloat16))
    ws: dict = {}
    for W in mats:
        got = spectra.gram_evals([W], workspace=ws)
        np.testing.assert_allclose(got, _dense_evals([W.float()]), rtol=1e-9,
                                   atol=1e-12 * float(got.max()))
    assert ("w", (40, 130)) in ws and ("g", 40) in ws
