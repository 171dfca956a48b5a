"""`inspect-kit gallery --quick`: every expected figure is written, is a real PNG, and is shown
in the gallery README; a second run re-renders from the cached checkpoints."""

import re

import pytest

from inspect_kit.cli import main

EXPECTED = [
    # KAN edges to formulas (quick: the README formula only)
    "kan_exp_sin_diagram.png", "kan_exp_sin_edges.png",
    # two MLPs on digits
    "mlp_hessian.png", "mlp_hessian_density.png", "mlp_esd.png", "mlp_lmc.png",
    "mlp_landscape_1d.png", "mlp_landscape_2d3d.png", "mlp_landscape_pca_path.png",
    # KAN classifier beside the MLP
    "kan_vs_mlp_hessian.png", "kan_esd.png", "kan_vs_mlp_landscape.png",
    # tiny ViT, softmax vs Fourier-KArAt
    "vit_training.png", "vit_weight_histograms.png", "vit_attention_heads.png",
    "vit_attention_rollout.png", "vit_attention_distance.png", "vit_attention_spectra.png",
    "vit_hessian_density.png", "vit_landscape_pca.png", "vit_karat_function.png",
    # grokking modular addition
    "modadd_spectrum.png", "modadd_neurons.png", "modadd_training.png", "modadd_logits.png",
    # empirical NTK of the digits MLP
    "ntk_mlp.png", "ntk_mlp_training.png",
    # intrinsic dimension of the digits MLP
    "intrinsic_dimension_mlp.png",
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    assert main(["gallery", "--out", str(out), "--quick", "--no-progress"]) == 0
    return out


def test_every_expected_figure_is_a_png(gallery):
    for name in EXPECTED:
        path = gallery / name
        assert path.exists(), f"{name} was not written"
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, f"{name} is not a real PNG"


def test_readme_shows_every_figure_with_numbers(gallery):
    readme = (gallery / "README.md").read_text()
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme))
    for name in EXPECTED:
        assert name in shown, f"README does not show {name}"
    pngs = {p.name for p in gallery.glob("*.png")}
    assert pngs <= shown, f"figures written but not in the README: {pngs - shown}"
    assert "| quantity | value |" in readme
    assert not list(gallery.glob(".*.tmp")), "a temporary file was left behind"


def test_html_page_shows_every_figure_beside_the_readme(gallery):
    """index.html (the report's page code) embeds the very PNGs the README links, section by
    section, and points nowhere outside itself."""
    import base64
    import html

    from .report_pages import PageReader

    text = (gallery / "index.html").read_text()
    readme = (gallery / "README.md").read_text()
    titles = re.findall(r"^## (.+)$", readme, flags=re.M)
    shown = re.findall(r'<section id="[^"]*" data-section="[^"]*"[^>]*><h2>([^<]*)', text)
    assert [html.unescape(t) for t in shown] == titles
    page = PageReader(text)
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"',
                                                        text)]
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert embedded == [(gallery / name).read_bytes() for name in linked]
    assert "http" not in text.split("<body>", 1)[1]
    assert page.charts  # Results drawn interactively where a figure came from one
    assert "versions" in text


def test_second_run_uses_the_cache(gallery, capsys):
    cached = sorted(p.name for p in (gallery / ".cache").glob("*.pt"))
    assert cached, "no trained checkpoint was cached"
    before = {p: (gallery / ".cache" / p).stat().st_mtime_ns for p in cached}
    assert main(["gallery", "--out", str(gallery), "--quick", "--section", "mlp_digits"]) == 0
    err = capsys.readouterr().err
    assert "cached checkpoint" in err and "train mlp" not in err
    assert {p: (gallery / ".cache" / p).stat().st_mtime_ns for p in cached} == before


def _table(readme: str, title: str) -> dict[str, str]:
    """The ``| quantity | value |`` rows under the figure titled ``title``."""
    block = readme.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.+?) \|$", block, re.M)
            if m.group(1) != "quantity"}


def test_readme_numbers_are_those_of_the_cached_models(gallery):
    """Numbers in the README recomputed without the kit: the centre loss by a plain forward of
    the cached MLP on the quick training prefix, its parameter count, and the PCA explained
    variance of its trajectory by numpy's SVD (weights only: biases are ignored, as drawn)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from inspect_kit.checkpoints import load_checkpoint, load_model
    from inspect_kit.data import load_data

    readme = (gallery / "README.md").read_text()
    path = gallery / ".cache" / "mlp-digits-seed0-quick-v1.pt"
    model, ckpt = load_model(path), load_checkpoint(path)
    d = load_data("digits")
    with torch.no_grad():
        loss = float(F.cross_entropy(model.eval()(d.x_train[:300]), d.y_train[:300]))
    for title in ("MLP: 1D loss landscape", "MLP: 2D and 3D loss landscape",
                  "MLP: optimizer path on the PCA plane"):
        assert float(_table(readme, title)["centre loss"]) == pytest.approx(loss, rel=1e-3)
    hess = _table(readme, "MLP: Hessian eigenvalues, density and blocks")
    assert int(hess["parameters"]) == sum(p.numel() for p in model.parameters())
    center = {k: p.detach().double() for k, p in model.named_parameters()}
    rows = np.stack([np.concatenate([(s[k].double() - v).numpy().ravel() * (v.dim() > 1)
                                     for k, v in center.items()]) for s in ckpt.trajectory])
    s = np.linalg.svd(rows - rows.mean(0), compute_uv=False)
    ratio = s**2 / (s**2).sum()
    shown = _table(readme, "MLP: optimizer path on the PCA plane")["explained variance (PC1, PC2)"]
    assert shown == f"{100 * ratio[0]:.1f}%, {100 * ratio[1]:.1f}%"
