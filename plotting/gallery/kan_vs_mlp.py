"""Gallery section: a zoo KAN classifier on digits beside the MLP (Hessian, ESD, landscapes)."""

from __future__ import annotations

from .context import Gallery
from .models import kan_digits, mlp_digits


def render(g: Gallery) -> None:
    from analyses.hessian import hessian
    from analyses.landscape import landscape
    from plotting import style
    from plotting.hessian import _density_axes, _eig_axes
    from plotting.landscape import plot_contour

    from . import common

    data = g.data("digits")
    models = {"KAN [64,16,10]": kan_digits(g), "MLP 64-128-128-10": mlp_digits(g, 0)}
    g.note("A B-spline KAN (grid 5, order 3, SiLU base) trained on digits with Adam, analysed "
           "with exactly the same calls as the MLP; test accuracy "
           + ", ".join(f"{k} {common.test_acc(ck):.3f}" for k, (_, ck) in models.items()) + ".")
    hs, ls = {}, {}
    for label, (model, ck) in models.items():
        with g.step(f"{label} · Hessian"):
            hs[label] = hessian(model, data, **common.hessian_options(
                g, top_k=5, which="both", trace=True, density=True, trace_budget=100,
                density_probes=8, density_steps=80))
        with g.step(f"{label} · PCA landscape"):
            ls[label] = landscape(model, data, dims=2, steps=9 if g.quick else 21,
                                  directions="pca", trajectory=ck.trajectory, progress=False)
    with style.context():
        fig, axes = style.figure(2, 2, width=9.0, height=6.8)
        for j, (label, h) in enumerate(hs.items()):
            _eig_axes(axes[0, j], h)
            axes[0, j].set_title(f"{label}: extreme eigenvalues")
            _density_axes(axes[1, j], h, "log", None)
            axes[1, j].set_title(f"{label}: density")
    numbers = {}
    for label, h in hs.items():
        numbers.update({f"{label}: {k}": v for k, v in common.hessian_numbers(h).items()
                        if k in ("top eigenvalue", "most negative eigenvalue", "trace (Hutch++)",
                                 "parameters")})
    g.add(fig, "kan_vs_mlp_hessian.png", "KAN vs MLP: Hessian spectra",
          "Top and bottom eigenvalues (Lanczos) and SLQ density of the training-loss Hessian of "
          "both classifiers, same data and settings.", numbers)
    common.esd_figure(g, models["KAN [64,16,10]"][0], "kan", "KAN")
    with style.context():
        fig, axes = style.figure(1, 2, width=10.0, height=4.0)
        for ax, (label, r) in zip(axes, ls.items()):
            plot_contour(r, ax)
            ax.set_title(f"{label}: PCA plane + path")
    g.add(fig, "kan_vs_mlp_landscape.png", "KAN vs MLP: loss landscapes with optimizer paths",
          "Training loss on each model's top-2 PCA plane of its own trajectory, path overlaid.",
          {f"{k}: {q}": v for k, r in ls.items() for q, v in common.pca_numbers(r).items()})
