"""pykan's README training recipe for a zoo KAN: train with sparsity, prune, retrain, refine.

Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks" (arXiv 2404.19756), §2.5 and the hellokan
example, with this kit's trainer: full-batch L-BFGS with the KAN sparsity regulariser
(``lamb * KAN.regularization``, pykan's ``std_n`` metric, grid updates every 5 steps in the
first half), mask every edge whose backward attribution is below a threshold
(:func:`prune`), retrain without the regulariser, move to a finer spline grid (:func:`refine`)
and retrain. Every function here returns a new model; a model passed in is never modified.

>>> import torch
>>> from inspect_kit.zoo.kan import KAN
>>> net = KAN([2, 3, 1], seed=0)
>>> finer = refine(net, torch.rand(64, 2) * 2 - 1, grid=8)
>>> finer.layers[0].coef.shape[-1] - net.layers[0].coef.shape[-1]
3
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..data import DataBundle, load_data


def prune(model: Any, data: Any, threshold: float) -> Any:
    """A deep copy of a zoo KAN with every edge whose attribution is below ``threshold`` masked."""
    from ..kan.attribution import attribute

    pruned = copy.deepcopy(model)
    att = attribute(pruned, data, knockout=False)
    with torch.no_grad():
        for l, layer in enumerate(pruned.layers):
            keep = torch.as_tensor(np.asarray(att.edge_scores[l]) >= threshold,
                                   dtype=layer.mask.dtype)
            layer.mask.mul_(keep)
    return pruned


def refine(model: Any, x: torch.Tensor, grid: int) -> Any:
    """A deep copy of a zoo KAN on a finer spline grid (pykan's ``refine``): every layer gets
    ``grid`` intervals adapted to its inputs on ``x`` and coefficients fitted by least squares
    to the old spline part on those inputs (scales, masks and biases kept)."""
    from .kan import KAN, fit_coef

    new = KAN(model.width, grid=grid, k=model.layers[0].k, base_fun=model.layers[0].base_fun,
              grid_eps=model.layers[0].grid_eps)
    h = x.reshape(len(x), -1).to(model.layers[0].coef.dtype)
    with torch.no_grad():
        for old, lay in zip(model.layers, new.layers):
            for name in ("scale_base", "scale_sp", "bias", "mask"):
                getattr(lay, name).copy_(getattr(old, name))
            lay.update_grid(h)  # knots from the samples (coef refitted to the *new* layer's spline)
            xs = torch.sort(h, dim=0).values
            lay.coef.copy_(fit_coef(xs, old.spline(xs), lay.grid, lay.k))
            h = old(h)
    spec = getattr(model, "zoo_spec", None)
    if spec is not None:
        object.__setattr__(new, "zoo_spec", {"name": spec["name"],
                                             "kwargs": {**spec["kwargs"], "grid": grid}})
    return new


def train_pruned_kan(
    data: Any,
    *,
    model: Any = None,
    width: list[int] | None = None,
    grid: int = 5,
    k: int = 3,
    lamb: float = 1e-3,
    lamb_entropy: float = 2.0,
    epochs: int = 40,
    retrain_epochs: int = 20,
    refine_grid: int | None = 10,
    prune_threshold: float = 0.01,
    seed: int = 0,
    progress: bool | None = None,
) -> Any:
    """Train ``KAN(width, grid, k, seed)`` (or a copy of ``model``) by the recipe above.

    ``data``: a spec string, a :class:`~inspect_kit.data.DataBundle` (its training split) or
    an ``(X, y)`` pair. Returns the trained, pruned and refined model.
    """
    from . import build
    from .train import fit

    bundle = load_data(data, seed=seed) if isinstance(data, str) else data
    train = bundle.split("train") if isinstance(bundle, DataBundle) else bundle
    if model is None:
        n_in = train[0].shape[1]
        n_out = train[1].shape[1] if train[1].dim() > 1 else 1
        model = build("kan", width=list(width or [n_in, 5, n_out]), grid=grid, k=k, seed=seed)
    else:
        model = copy.deepcopy(model)
    reg = ((lambda m, x: lamb * m.regularization(x, 1.0, lamb_entropy, metric="std_n"))
           if lamb else None)
    fit(model, train, epochs=epochs, optimizer="lbfgs", lr=1.0, regularizer=reg,
        grid_update_every=5, seed=seed, progress=progress)
    model = prune(model, train, prune_threshold)
    fit(model, train, epochs=retrain_epochs, optimizer="lbfgs", lr=1.0, seed=seed,
        progress=progress)
    if refine_grid and refine_grid > grid:
        model = refine(model, train[0], refine_grid)
        fit(model, train, epochs=retrain_epochs, optimizer="lbfgs", lr=1.0, seed=seed,
            progress=progress)
    return model
