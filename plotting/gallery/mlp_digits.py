"""Gallery section: two MLPs on digits (Hessian, ESD, LMC before/after matching, landscapes)."""

from __future__ import annotations

from .context import Gallery
from .models import mlp_digits


def render(g: Gallery) -> None:
    from analyses.hessian import hessian
    from analyses.landscape import landscape
    from analyses.lmc import lmc
    from plotting.hessian import plot_density, plot_hessian
    from plotting.landscape import plot_contour, plot_landscape, plot_line
    from plotting.lmc import plot_lmc

    from . import common

    data = g.data("digits")
    (a, ck_a), (b, _) = mlp_digits(g, 0), mlp_digits(g, 1)
    g.note("Two MLPs 64-128-128-10 trained on scikit-learn's digits with Adam from seeds 0 and 1 "
           f"(test accuracy {common.test_acc(ck_a):.3f}).")

    with g.step("MLP seed 0 · Hessian"):
        h = hessian(a, data, **common.hessian_options(
            g, top_k=5, which="both", trace=True, density=True, trace_budget=100,
            density_probes=10, density_steps=90, blocks="layer"))
    g.add(plot_hessian(h), "mlp_hessian.png", "MLP: Hessian eigenvalues, density and blocks",
          "Full-batch Hessian of the training loss (eval mode): extreme eigenvalues by Lanczos, "
          "SLQ density on a symlog axis, and per-layer blocks beside the full spectrum.",
          common.hessian_numbers(h), result=h)
    g.add(plot_density(h, scale="symlog"), "mlp_hessian_density.png", "MLP: Hessian spectral density",
          "Stochastic Lanczos quadrature density (seeded probes); most mass sits near zero and a "
          "few outliers carry the curvature.", {"hvp products": h.hvp_count}, result=h)
    common.esd_figure(g, a, "mlp", "MLP")

    with g.step("MLP pair · LMC"):
        r = lmc(a, b, data, matching="weights", layerwise=True, steps=9 if g.quick else 25,
                split="both", progress=False)
    g.add(plot_lmc(r), "mlp_lmc.png", "MLP pair: linear mode connectivity",
          "Loss and error along (1-t) A + t B before and after Git Re-Basin weight matching, and "
          "the layer-wise barriers of the matched pair.", common.lmc_numbers(r), result=r)

    steps = 9 if g.quick else 25
    with g.step("MLP · 1D landscape"):
        line = landscape(a, data, dims=1, steps=2 * steps + 1, seed=0, progress=False)
    g.add(plot_line(line), "mlp_landscape_1d.png", "MLP: 1D loss landscape",
          "Loss and accuracy along one filter-normalised Gaussian direction (Li et al. 2018); "
          "the centre is the trained model, evaluated exactly.",
          {"centre loss": line.center_loss}, result=line)
    with g.step("MLP · 2D landscape"):
        plane = landscape(a, data, dims=2, steps=steps, seed=0, progress=False)
    g.add(plot_landscape(plane), "mlp_landscape_2d3d.png", "MLP: 2D and 3D loss landscape",
          "Filter-normalised random plane (biases and norms ignored, as in the paper): contour "
          "and surface of the training loss.", {"centre loss": plane.center_loss},
          result=plane)
    with g.step("MLP · PCA landscape + optimizer path"):
        pca = landscape(a, data, dims=2, steps=steps, directions="pca",
                        trajectory=ck_a.trajectory, progress=False)
    g.add(common.contour(plot_contour, pca), "mlp_landscape_pca_path.png",
          "MLP: optimizer path on the PCA plane",
          "The training trajectory (one snapshot per epoch) projected on its top-2 principal "
          "directions, drawn over the loss contour of that plane.", common.pca_numbers(pca),
          result=pca)
