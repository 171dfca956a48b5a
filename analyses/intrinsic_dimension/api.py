"""``intrinsic_dimension(model, data, ...)``: d_int90 by random-subspace training.

Li et al. 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes"): train
``theta = theta_0 + P z`` (:func:`inspect_kit.zoo.subspace.fit_subspace`) with a random dense
or Fastfood ``P`` (:mod:`.projection`) at several ``d``, and find the smallest ``d`` reaching
90% of the directly trained model (:mod:`.search`, both baseline definitions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import LossFn
from inspect_kit.errors import DataError, OptionError, SizeLimitError
from inspect_kit.memory import budget as memory_budget
from inspect_kit.memory import human
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import make_view
from inspect_kit.view.batches import concat
from inspect_kit.zoo.subspace import fit_subspace

from .projection import PROJECTIONS, make_projection, projection_bytes
from .result import IntrinsicDimensionResult
from .search import bracket, default_dims, first_crossing, search, thresholds

SPLITS = ("test", "train")


def _chance(view: Any) -> float:
    y = concat(list(view.batches)).target.reshape(-1)
    return float(torch.bincount(y.long()).max()) / len(y)


def _eval_view(model: nn.Module, data: Any, eval_split: str, view: Any,
               opts: dict[str, Any]) -> Any:
    """The view of the evaluation split of a bundle or spec (plain data: the training view)."""
    from inspect_kit.data import DataBundle

    if eval_split == view.options["split"] or not isinstance(data, (str, DataBundle)):
        return view
    try:
        return make_view(model, data, split=eval_split, **opts)
    except DataError as exc:
        raise DataError(f"{exc}; or pass eval_split='train'") from exc


def _check(projection: str, dims: Any, epochs: int, lr: float, refine: int,
           baseline: float | None, eval_split: str) -> None:
    if projection not in PROJECTIONS:
        raise OptionError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if eval_split not in SPLITS:
        raise OptionError(f"eval_split must be one of {SPLITS}, got {eval_split!r}")
    if dims is not None and (not list(dims) or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims)):
        raise OptionError(f"dims must be a non-empty list of positive integers, got {dims!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise OptionError(f"epochs must be a positive integer, got {epochs!r}")
    if not lr > 0:
        raise OptionError(f"lr must be > 0, got {lr!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise OptionError(f"refine must be an integer >= 0, got {refine!r}")
    if baseline is not None and not 0 < baseline <= 1:
        raise OptionError(f"baseline must be an accuracy in (0, 1], got {baseline!r}")


@entry_point("intrinsic_dimension")
def intrinsic_dimension(
    model: nn.Module,
    data: Any,
    *,
    dims: Iterable[int] | None = None,
    projection: str = "fastfood",
    epochs: int = 10,
    lr: float = 0.05,
    full_lr: float = 1e-3,
    train_batch_size: int | None = 64,
    refine: int = 3,
    baseline: float | None = None,
    eval_split: str = "test",
    memory: int | float | str | None = None,
    loss: str | LossFn | None = None,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
    split: str = "train",
    samples: int | None = None,
    seed: int = 0,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> IntrinsicDimensionResult:
    """d_int90 of ``model`` (its parameters are ``theta_0``) on classification ``data``.

    * ``dims``: subspace dimensions of the grid (default powers of two up to ``D``), tried in
      increasing order until both thresholds are met; ``refine`` bisection steps then narrow
      each threshold's bracket (:mod:`.search`).
    * ``projection``: "fastfood" (``O(D)`` memory; default) or "dense" (``D d`` floats, refused
      beyond ``memory``: bytes or "2GB", default half the available memory).
    * Training (:func:`inspect_kit.zoo.subspace.fit_subspace`): Adam for ``epochs`` epochs on
      mini-batches of ``train_batch_size`` (None = full batch) of the ``split`` data, learning
      rate ``lr`` for ``z``;
      the full model is trained the same way with ``full_lr`` unless ``baseline`` gives its
      accuracy. Accuracy is measured on ``eval_split`` of a bundle or spec ("test", default;
      plain ``(X, y)`` data is its own evaluation split).
    * ``seed`` draws every projection (``d`` and ``seed`` together), the mini-batch order and
      the ``samples`` draw. The view's options: ``include`` (the parameters that move),
      ``model_mode``, ``dtype``, ``device``, ``loss``.

    The model is never modified: every run evaluates it functionally on its own parameters.
    """
    _check(projection, dims, epochs, lr, refine, baseline, eval_split)
    budget = memory_budget(memory)
    opts = dict(loss=loss, include=include, model_mode=model_mode, dtype=dtype, device=device,
                seed=seed)
    view = make_view(model, data, split=split, samples=samples, **opts)
    if not view.classify:
        raise DataError("intrinsic_dimension measures classification accuracy: pass data with "
                        "integer class labels")
    eval_view = _eval_view(model, data, eval_split, view, opts)
    D = view.n
    grid = sorted({int(d) for d in (dims if dims is not None else default_dims(D)) if d <= D})
    if not grid:
        raise OptionError(f"every d in dims exceeds the number of parameters D={D}")
    itemsize = torch.empty(0, dtype=view.dtype).element_size()
    need = projection_bytes(projection, D, max(grid), itemsize)
    if need > budget:
        fits = max(1, budget // (D * itemsize))
        raise SizeLimitError(f"a dense {D} x {max(grid)} projection needs {human(need)}, "
                             f"over memory={human(budget)}; use projection='fastfood' "
                             f"(O(D) memory) or dims <= {fits}")
    train = dict(eval_view=eval_view, epochs=epochs, batch_size=train_batch_size, seed=seed)
    full_curve = None
    if baseline is None:
        full = fit_subspace(view, None, lr=full_lr, progress=False, **train)
        full_curve, baseline = full.history, full.final["eval_acc"]
    chance = _chance(eval_view)
    taus = thresholds(float(baseline), chance)
    runs: dict[int, Any] = {}

    with bar(None, desc=f"d_int90 ({projection})", progress=progress, unit="run") as pbar:
        def run(d: int) -> float:
            P = make_projection(projection, D, d, seed=seed * 1_000_003 + d, dtype=view.dtype,
                                device=view.device)
            runs[d] = fit_subspace(view, P, d, lr=lr, progress=False, **train)
            pbar.update(1)
            pbar.set_postfix(d=d, acc=f"{runs[d].final['eval_acc']:.3f}", refresh=False)
            return runs[d].final["eval_acc"]

        acc = search(run, grid, taus, refine=refine)
    ds = sorted(acc)
    brackets = {k: (list(b) if (b := bracket(acc, t)) is not None else None)
                for k, t in taus.items()}
    return IntrinsicDimensionResult(
        dims=ds, accuracy=np.array([acc[d] for d in ds]),
        train_loss=np.array([runs[d].final["train_loss"] for d in ds]),
        curves=[runs[d].history for d in ds], full_accuracy=float(baseline),
        chance_accuracy=chance, thresholds=taus,
        d_int90={k: first_crossing(acc, t) for k, t in taus.items()}, brackets=brackets,
        projection=projection, n_params=D, epochs=epochs, lr=lr, eval_split=eval_split,
        seconds_per_run=[runs[d].seconds for d in ds], full_curve=full_curve,
        provenance={"view": view.options})
