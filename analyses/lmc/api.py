"""Public entry points: :func:`lmc` (curves, barriers, alignment, REPAIR, layer-wise) and
:func:`align` (a permuted copy of B matched to A). Neither modifies the models it is given.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import DataBundle, LossFn, load_data
from inspect_kit.errors import NonFiniteError, OptionError
from inspect_kit.limits import check_time
from inspect_kit.modes import model_mode
from inspect_kit.params import check_finite
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import BUFFER_POLICIES, ENGINES, make_view

from .activation_matching import activation_matching
from .interpolate import check_pair, curve
from .layerwise import layerwise_barriers
from .permutation import load_state_copy, model_state, permutation_spec
from .repair import layer_stats, repair_targets, repaired_point, variance_ratios
from .result import AlignResult, LMCResult
from .weight_matching import matching_state, weight_matching

MATCHINGS = ("none", "weights", "activations")
MAX_STEPS = 100_000  # points on a path before refinement
CHECK_SAMPLES = 256  # inputs of the permuted-copy check max |B(x) - B'(x)|


def _splits(data: Any, split: str | Sequence[str]) -> tuple[Any, list[str]]:
    """The data (a bundle when it is a name) and the split names to evaluate."""
    if isinstance(data, str):
        data = load_data(data)
    names = ["train", "test"] if split == "both" else [split] if isinstance(split, str) \
        else list(split)
    for s in names:
        if s not in ("train", "test"):
            raise OptionError(f"split must be 'train', 'test', 'both' or a list of them, got "
                              f"{split!r}")
    if not isinstance(data, DataBundle):
        if names != ["train"]:
            raise OptionError(f"split={split!r} needs a data set with splits (a DataBundle or a "
                              "name such as 'digits'); this data is one set: use split='train'")
        return data, ["data"]
    return data, names


def _inputs(view: Any, n: int) -> torch.Tensor:
    x = torch.cat([b.x for b in view.batches])
    return x[:n]


def align(model_a: nn.Module, model_b: nn.Module, method: str = "weights", data: Any = None, *,
          split: str = "train", samples: int | None = None, seed: int = 0,
          restarts: int = 3) -> AlignResult:
    """Permute model B's hidden units to match model A ("weights" or "activations").

    The permutation groups come from :func:`analyses.lmc.permutation.permutation_spec` (one
    traced forward of a copy of A on a few inputs of ``data``). Weight matching needs no data
    except that example batch; activation matching correlates activations on ``data``
    (``split``, a seeded draw of ``samples``). Weight matching keeps the best of ``restarts``
    coordinate descents (from the identity, then from random permutations). Returns an
    :class:`AlignResult` holding a permuted *copy* of B and the check ``max |B(x) - B'(x)|`` on
    up to 256 of the inputs.
    """
    if method not in ("weights", "activations"):
        raise OptionError(f"method must be 'weights' or 'activations', got {method!r}")
    if data is None:
        raise OptionError("align needs data: a batch of inputs to trace the model (and, for "
                          "activation matching, to correlate activations); pass data=")
    sa, sb = model_state(model_a), model_state(model_b)
    check_pair(sa, sb)
    check_finite(sa, "model A")
    check_finite(sb, "model B")
    view = make_view(model_a, data, split=split, samples=samples, seed=seed)
    x = _inputs(view, max(CHECK_SAMPLES, view.n_samples))
    start, cpu = time.perf_counter(), time.process_time()
    spec = permutation_spec(model_a, x[:8])
    if method == "weights":
        perms, sweeps = weight_matching(spec, matching_state(model_a), matching_state(model_b),
                                        seed=seed, restarts=restarts)
    else:
        perms, sweeps = activation_matching(spec, model_a, model_b, x, seed=seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    new_state = spec.apply(sb, perms)
    twin = load_state_copy(model_b, new_state)
    xc = x[:CHECK_SAMPLES]
    with torch.no_grad(), model_mode(model_b, "eval", warn=False), \
            model_mode(twin, "eval", warn=False):
        delta = float((model_b(xc) - twin(xc)).abs().max())
    names = {n for n, _ in model_b.named_parameters()}
    total = sum(sb[n].numel() for n in names)
    moved = sum(int((new_state[n] != sb[n]).sum()) for n in names)
    return AlignResult(twin, perms, method, delta, moved / max(total, 1), seconds, sweeps,
                       spec.describe(), spec.unknown_ops, cpu_seconds,
                       tuple(f.info() for f in spec.frozen))


@entry_point("lmc", renamed={"align": "matching"})
def lmc(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    *,
    matching: str = "none",
    repair: bool = False,
    layerwise: bool = False,
    steps: int = 25,
    split: str | Sequence[str] = "train",
    samples: int | None = None,
    seed: int = 0,
    loss: str | LossFn | None = None,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    buffers: str = "follow",
    engine: str = "auto",
    refine: bool = True,
    force: bool = False,
    progress: bool | None = None,
) -> LMCResult:
    """Linear mode connectivity of two models of one architecture.

    ``data``: any data form; ``split``: "train" (default), "test", "both" or a list, for data
    sets with splits (``"digits"``, a :class:`~inspect_kit.data.DataBundle`). ``matching``:
    "none", "weights" (Git Re-Basin weight matching) or "activations" (activation matching).
    ``repair``: REPAIR the interpolated networks (statistics from the training split; in a
    BatchNorm network every BN's running statistics are first RESET to the data's and every
    affine BN's output is REPAIRed, see :mod:`analyses.lmc.repair`). Functions the permutation
    tracer has no rule for are named in an ``UnknownOpWarning`` and in
    ``result.aligned["frozen_groups"]`` with the unit groups they kept in place.
    ``layerwise``: per-module barriers (Adilova et al. 2024) on the final pair. ``steps``
    uniform points in [0, 1], refined near the maximum. ``buffers``: "follow" (floating buffers
    interpolate with the weights, so t = 1 is exactly model B) or "keep" (model A's buffers
    throughout). The model view's options (``samples``, a seeded draw; ``model_mode``,
    ``dtype``, ``device``, ``batch_size``, ``loss``; ``engine``) as in
    :class:`inspect_kit.view.ModelView`. Returns an :class:`LMCResult`. ``steps`` is at most
    :data:`MAX_STEPS`, and paths estimated to take longer than the kit's time limit are refused
    unless ``force=True``; a NaN/inf loss anywhere on a path raises
    :class:`~inspect_kit.errors.NonFiniteError` naming the split and ``t``.
    """
    if matching not in MATCHINGS:
        raise OptionError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    if buffers not in BUFFER_POLICIES:
        raise OptionError(f"buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
    if engine not in ENGINES:
        raise OptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    if steps < 2:
        raise OptionError(f"steps must be >= 2 (the two endpoints), got {steps}")
    if steps > MAX_STEPS:
        raise OptionError(f"steps={steps:,} is more than {MAX_STEPS:,} points on a path; the "
                          "refinement near the maximum adds points where they matter")
    data, names = _splits(data, split)
    sa, sb = model_state(model_a), model_state(model_b)
    check_pair(sa, sb)
    check_finite(sa, "model A")
    check_finite(sb, "model B")
    opts = dict(loss=loss, model_mode=model_mode, dtype=dtype, device=device,
                batch_size=batch_size, samples=samples, seed=seed)
    views = {s: make_view(model_a, data, split="train" if s == "data" else s, **opts)
             for s in names}
    first = next(iter(views.values()))
    t_loss = time.perf_counter()
    for s, v in views.items():
        v.check_loss_finite(v.loss(), f"of model A on {s}")
    t_loss = time.perf_counter() - t_loss
    n_curves = 1 + (matching != "none") + bool(repair)
    check_time(steps * n_curves * t_loss * (2 if refine else 1),
               f"{n_curves} path(s) of {steps:,} points on {len(views)} split(s)",
               "use fewer steps", force=force)
    kw = dict(steps=steps, refine=refine, engine=engine)
    direction = first.direction_to(sb, buffers=buffers, all_params=True)
    curves = {"naive": _finite(curve(views, direction, **kw), "interpolation path")}
    aligned_info = None
    final_b = sb
    if matching != "none":
        res = _align(model_a, model_b, matching, data, samples=samples, seed=seed)
        aligned_info = res.info()
        final_b = model_state(res.model)
        direction = first.direction_to(final_b, buffers=buffers, all_params=True)
        curves["aligned"] = _finite(curve(views, direction, **kw), "aligned path")
    repair_info = None
    if repair:
        repair_info = _repair(model_a, data, views, first, final_b, list(direction), kw, opts,
                              curves, progress)
    lw = None
    if layerwise:
        lw = layerwise_barriers(views, direction, steps=steps, engine=engine, progress=progress)
    final = curves[list(curves)[-1]]
    return LMCResult(t=final["t"], loss=final["loss"], error=final["error"],
                     barrier_mean=final["barrier_mean"], barrier_linear=final["barrier_linear"],
                     curves=curves, aligned=aligned_info, repair=repair_info, layerwise=lw,
                     splits=tuple(names), steps=int(steps), buffers=buffers,
                     provenance={"view": first.options})


def _repair(model_a: nn.Module, data: Any, views: dict[str, Any], first: Any, final_b: Any,
            keys: list[str], kw: dict[str, Any], opts: dict[str, Any], curves: dict[str, Any],
            progress: bool | None) -> dict[str, Any]:
    """The REPAIRed curve (added to ``curves``) and the variance-collapse ratios."""
    train = views.get("train") or views.get("data")
    if train is None:
        train = make_view(model_a, data, split="train", **opts)
    spec = permutation_spec(model_a, _inputs(train, 8), warn=False)
    targets = repair_targets(model_a, spec)
    final = {k: train._cast(v) for k, v in final_b.items()}
    ends = (layer_stats(train, train.state, targets), layer_stats(train, final, targets))

    def points(ts: np.ndarray) -> list[dict[str, torch.Tensor]]:
        out = []
        with bar(len(ts), "REPAIR points", progress) as pb:
            for t in ts:
                out.append(repaired_point(train, final, keys, float(t), targets, ends))
                pb.update(1)
        return out

    curves["repaired"] = _finite(curve(views, {}, point_fn=points, **kw), "REPAIRed path")
    mid = repaired_point(train, final, keys, 0.5, targets, ends)
    return {
        "layers": targets,
        "reset_batchnorm": [n for n, m in model_a.named_modules()
                            if isinstance(m, nn.modules.batchnorm._BatchNorm)
                            and m.running_mean is not None],
        "variance_ratio": variance_ratios(train, final, keys, targets, ends),
        "variance_ratio_repaired": variance_ratios(train, final, keys, targets, ends, state=mid),
        "n_samples": int(train.n_samples),
    }


def _finite(c: dict[str, Any], what: str) -> dict[str, Any]:
    """The curve ``c``, or NonFiniteError naming the split and the first t with a NaN/inf loss
    (a barrier of a path through NaN is undefined, not null)."""
    for s, lo in c["loss"].items():
        bad = np.flatnonzero(~np.isfinite(lo))
        if len(bad):
            i = int(bad[0])
            raise NonFiniteError(f"the loss is {lo[i]} at t={float(c['t'][i]):.4g} on the {what} "
                                 f"(split {s!r}); the interpolated network overflows: check the "
                                 "weights and the data, or use --dtype float64")
    return c


_align = align
