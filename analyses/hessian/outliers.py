"""``outliers(model, data)``: which class (pair) each outlier of the Gauss-Newton spectrum carries.

The top ``C + C(C - 1) + extra`` eigenpairs of the GGN (Lanczos on GGN products) are compared
with the span of the class means and of all ``C^2`` class/cross-class means of the logit
gradients (Papyan 2019, 2020; the decomposition and its formulas are in :mod:`.class_means`):
an eigenvector mostly inside the class-means span is a class outlier, one mostly inside the
span of all means (but not the class span) a cross-class outlier, the rest bulk. Beside it: the
Hessian's top eigenvalues (same count) and the spectral density of ``H - G``, whose negative
mass says how much negative curvature the network's second-order term carries (the GGN itself
is positive semi-definite for cross-entropy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import make_view

from . import class_means as cm
from .lanczos import lanczos_eigs
from .operator import HessianOperator
from .result import OutliersResult
from .slq import slq_density

#: share of an eigenvector that a span must hold to claim it
CLAIM = 0.5


@entry_point("outliers", renamed={"mode": "model_mode"})
def outliers(
    model: nn.Module,
    data: Any,
    *,
    n_classes: int | None = None,
    extra: int = 10,
    residual: bool = True,
    residual_probes: int = 4,
    residual_steps: int = 60,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
    split: str = "train",
    samples: int | None = None,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    tol: float = 1e-6,
    memory: int | str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> OutliersResult:
    """The GGN's outliers of a ``C``-class cross-entropy classifier, by class and class pair.

    ``n_classes`` defaults to the largest label + 1; the top ``C^2 + extra`` eigenpairs are
    computed (fewer when the model has fewer parameters). ``residual``: also the SLQ density of
    ``H - G`` (``residual_probes`` probes of ``residual_steps`` steps) and its negative mass.
    The other options are the model view's (:class:`inspect_kit.view.ModelView`).
    """
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
        raise OptionError(f"extra must be an integer >= 0, got {extra!r}")
    view = make_view(model, data, include=include, split=split, samples=samples, seed=seed,
                     model_mode=model_mode, dtype=dtype, device=device, batch_size=batch_size,
                     loss="cross_entropy")
    view.check_loss_finite(view.loss(), "at the model's parameters")
    labels = torch.cat([b.target for b in view.batches]) if view.batches[0].target is not None \
        else None
    if labels is None or labels.is_floating_point():
        raise OptionError("outliers needs integer class labels (a classifier's data)")
    C = int(n_classes) if n_classes is not None else int(labels.max()) + 1
    if C < 2:
        raise OptionError(f"n_classes must be >= 2, got {C}")
    k = int(min(view.n - 2, C * C + int(extra)))
    with bar(4, "outliers", progress) as pb:
        ggn = HessianOperator(view=view, curvature="ggn", seed=seed)
        eg = lanczos_eigs(ggn, k, which="largest", tol=tol, seed=seed, return_vectors=True,
                          memory=memory, criterion="residual", max_steps=min(view.n, max(300, 4 * k)),
                          progress=False)
        pb.update(1)
        means = cm.class_means(view, C, memory=memory)
        parts = cm.split_means(means)
        vecs = eg.vectors.to(means.dtype)
        cap_class = cm.capture(cm.orthonormal(parts["class"]), vecs)
        cap_all = cm.capture(cm.orthonormal(parts["all"]), vecs)
        kinds = ["class" if a >= CLAIM else "cross-class" if b >= CLAIM else "bulk"
                 for a, b in zip(cap_class.tolist(), cap_all.tolist())]
        pb.update(1)
        hop = HessianOperator(view=view, curvature="hessian", seed=seed)
        eh = lanczos_eigs(hop, k, which="largest", tol=tol, seed=seed + 1, memory=memory,
                          max_steps=min(view.n, max(300, 4 * k)), progress=False)
        pb.update(1)
        res = None
        if residual:
            rop = HessianOperator(view=view, curvature="hessian_minus_ggn", seed=seed)
            d = slq_density(rop, n_probes=residual_probes, steps=residual_steps, deflate=0,
                            seed=seed + 2, memory=memory, progress=False)
            res = {"negative_mass": d.negative_mass, "positive_mass": d.positive_mass,
                   "threshold": d.threshold, "grid": d.grid, "values": d.values,
                   "probes": residual_probes, "steps": residual_steps}
        pb.update(1)
    ev = np.asarray(eg.eigenvalues, dtype=float)
    counts = {kind: kinds.count(kind) for kind in ("class", "cross-class", "bulk")}
    last = max((i for i, kd in enumerate(kinds) if kd != "bulk"), default=None)
    gap = (float(ev[last] / ev[last + 1]) if last is not None and last + 1 < len(ev)
           and ev[last + 1] > 0 else None)
    return OutliersResult(
        n_classes=C, n_params=view.n, n_samples=view.n_samples, ggn_eigenvalues=ev,
        hessian_eigenvalues=np.asarray(eh.eigenvalues, dtype=float), kinds=kinds,
        class_capture=cap_class.double().cpu().numpy(), means_capture=cap_all.double().cpu().numpy(),
        attribution=cm.attribute(means, vecs),
        means_eigenvalues=cm.gram_eigenvalues(parts["all"]).numpy()[:C * C],
        class_eigenvalues=cm.gram_eigenvalues(parts["class"]).numpy()[:C],
        cross_eigenvalues=cm.gram_eigenvalues(parts["cross"]).numpy()[:C * (C - 1)],
        counts=counts, gap=gap, residual=res, provenance={"view": view.options})
