"""Gallery section: the tiny ViT with softmax vs Fourier-KArAt attention (the KArAt paper's
analyses at digits scale): training curves, weight histograms over epochs, per-head attention and
rollout, attention spectra, Hessian density, PCA landscapes with optimizer paths, and the learned
attention function fitted symbolically."""

from __future__ import annotations

from typing import Any

import numpy as np

from .context import Gallery
from .models import vit_digits

LABELS = {"softmax": "softmax", "fourier_karat": "Fourier-KArAt"}


def render(g: Gallery) -> None:
    from analyses.attention import attention
    from plotting.attention import plot_distance, plot_heads, plot_rollout, plot_spectra

    from . import common

    data = g.data("digits")
    models = {LABELS[k]: vit_digits(g, k) for k in LABELS}
    accs = {k: common.test_acc(ck) for k, (_, ck) in models.items()}
    g.note("The zoo's tiny ViT (2x2 patches of the 8x8 digits, CLS token) trained with Adam, once "
           "with softmax attention and once with an element-wise Fourier-KArAt function of the "
           "scores (learnable per head, G = 3); test accuracy "
           + ", ".join(f"{k} {v:.3f}" for k, v in accs.items()) + ".")
    g.add(_training_curves(models), "vit_training.png", "ViT: training curves",
          "Training loss and test accuracy per epoch for both attention types (same seed, data "
          "and optimiser).", {f"{k} test accuracy": v for k, v in accs.items()})
    g.add(_weight_histograms(models), "vit_weight_histograms.png",
          "ViT: weight distributions during training",
          "Histograms of all weights at the first, middle and last snapshot, as in the KArAt "
          "paper's Fig. 12.", {})

    with g.step("ViT · attention maps"):
        res = {
            LABELS["softmax"]: attention(models["softmax"][0], data, index=0, rollout=True,
                                         progress=False),
            LABELS["fourier_karat"]: attention(models["Fourier-KArAt"][0], data, index=0,
                                               rollout=True, policy="raw", progress=False),
        }
    karat = res["Fourier-KArAt"]
    neg = [float(np.nanmean(np.asarray(layer["negative_mass"], dtype=float))) for layer in
           karat.to_dict()["layers"]]
    g.add(plot_heads(res), "vit_attention_heads.png", "ViT: per-head CLS attention, one digit",
          "CLS-to-patch attention of every head and layer for the same test image; signed maps for "
          "KArAt use a diverging scale, so negative attention stays visible.",
          {"KArAt mean negative mass per layer": ", ".join(f"{100 * v:.1f}%" for v in neg)})
    g.add(plot_rollout(res), "vit_attention_rollout.png", "ViT: attention rollout",
          "Rollout (Abnar & Zuidema 2020, residual 0.5 A + 0.5 I) over the input image; KArAt "
          "rolled out raw (policy stated, negatives kept).", {})
    g.add(plot_distance(res), "vit_attention_distance.png", "ViT: attention distance and entropy",
          "Mean attended patch distance, entropy and negative mass per layer and head.", {})
    g.add(plot_spectra(res), "vit_attention_spectra.png", "ViT: singular values of attention",
          "Singular-value spectra of the last layer's attention matrices, after and before the "
          "activation (the KArAt paper's Fig. 5 analysis).", {})
    _curvature_and_landscapes(g, models, data)
    _symbolic_attention(g, models["Fourier-KArAt"][0], data)


def _training_curves(models: dict[str, Any]) -> Any:
    from plotting import style

    with style.context():
        fig, (a1, a2) = style.figure(1, 2, width=8.4, height=3.2)
        for i, (label, (_, ck)) in enumerate(models.items()):
            hist = ck.meta["extra"]["history"]
            ep = [h["epoch"] for h in hist]
            a1.plot(ep, [h["train_loss"] for h in hist], color=style.PALETTE[i], label=label)
            a2.plot(ep, [100 * h.get("test_acc", np.nan) for h in hist], color=style.PALETTE[i],
                    label=label)
        a1.set_yscale("log")
        a1.set(xlabel="epoch", ylabel="training loss", title="training loss")
        a2.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
        a1.legend()
    return fig


def _weight_histograms(models: dict[str, Any]) -> Any:
    import torch

    from plotting import style

    with style.context():
        fig, axes = style.figure(1, len(models), width=4.2 * len(models), height=3.2, sharey=True)
        for ax, (label, (_, ck)) in zip(np.atleast_1d(axes), models.items()):
            traj, epochs = ck.trajectory, ck.meta["extra"]["snapshot_epochs"]
            picks = sorted({0, len(traj) // 2, len(traj) - 1})
            last = torch.cat([v.flatten() for k, v in traj[-1].items() if k.endswith("weight")])
            lim = float(np.quantile(last.abs().numpy(), 0.999))
            for j, i in enumerate(picks):
                w = torch.cat([v.flatten() for k, v in traj[i].items() if k.endswith("weight")])
                ax.hist(w.numpy(), bins=np.linspace(-lim, lim, 81), histtype="step",
                        color=style.PALETTE[j], label=f"epoch {epochs[i]}", density=True)
            ax.set(xlabel="weight value", title=f"{label}: all weight matrices")
            ax.legend()
        np.atleast_1d(axes)[0].set_ylabel("density")
    return fig


def _curvature_and_landscapes(g: Gallery, models: dict[str, Any], data: Any) -> None:
    from analyses.hessian import hessian
    from analyses.landscape import landscape
    from plotting import style
    from plotting.hessian import _density_axes
    from plotting.landscape import plot_contour

    from . import common

    hs, ls = {}, {}
    n_hess = 64 if g.quick else 512
    for label, (model, ck) in models.items():
        with g.step(f"ViT {label} · Hessian"):
            hs[label] = hessian(model, data, samples=n_hess, **common.hessian_options(
                g, top_k=3, trace=True, density=True, trace_budget=40, density_probes=4,
                density_steps=40))
        with g.step(f"ViT {label} · PCA landscape"):
            ls[label] = landscape(model, data, dims=2, steps=9 if g.quick else 21,
                                  directions="pca", trajectory=ck.trajectory, progress=False)
    with style.context():
        fig, axes = style.figure(1, 2, width=9.0, height=3.5)
        for ax, (label, h) in zip(axes, hs.items()):
            _density_axes(ax, h, "log", None)
            ax.set_title(f"{label}: Hessian density")
    g.add(fig, "vit_hessian_density.png", "ViT: Hessian spectral density",
          f"SLQ density of the training-loss Hessian on a seeded draw of {n_hess} training images, for "
          "both attention types (same subset, probes and seeds).",
          {f"{k} top eigenvalue": float(max(h.eigenvalues)) for k, h in hs.items()}
          | {f"{k} trace": h.trace for k, h in hs.items()})
    with style.context():
        fig, axes = style.figure(1, 2, width=10.0, height=4.0)
        for ax, (label, r) in zip(axes, ls.items()):
            plot_contour(r, ax)
            ax.set_title(f"{label}: PCA plane + optimizer path")
    g.add(fig, "vit_landscape_pca.png", "ViT: loss landscapes with optimizer paths",
          "Training loss on the plane of the top-2 principal directions of each model's "
          "trajectory (the KArAt paper's Fig. 10 analysis), path drawn over it.",
          {f"{k}: {q}": v for k, r in ls.items() for q, v in common.pca_numbers(r).items()})


def _symbolic_attention(g: Gallery, model: Any, data: Any) -> None:
    """The learned attention function of each KArAt head, fitted like a KAN edge."""
    from . import common

    common.symbolic_activation_figure(g, model, data, "vit_karat_function.png",
                                      "Fourier-KArAt: the learned attention function, fitted")
