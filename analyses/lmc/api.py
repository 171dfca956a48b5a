"""Public entry points: :func:`lmc` (curves, barriers, alignment, REPAIR, layer-wise) and
:func:`align` (a permuted copy of B matched to A). Neither modifies the models it is given.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import Batches
from inspect_kit.errors import OptionError
from inspect_kit.modes import model_mode
from inspect_kit.params import check_finite
from inspect_kit.progress import bar

from .activation_matching import activation_matching
from .interpolate import check_pair, curve, split_batches
from .layerwise import layerwise_barriers
from .permutation import load_state_copy, model_state, permutation_spec
from .repair import layer_stats, repair_targets, repaired_point, variance_ratios
from .result import AlignResult, LMCResult
from .weight_matching import weight_matching

METHODS = ("none", "weights", "activations")


def _inputs(data: Any, n: int) -> torch.Tensor:
    splits = split_batches(data)
    first = splits.get("train", next(iter(splits.values())))
    x, _ = first.tensors()
    return x[:n]


def align(model_a: nn.Module, model_b: nn.Module, method: str = "weights", data: Any = None, *,
          seed: int = 0, restarts: int = 3, check_samples: int = 256) -> AlignResult:
    """Permute model B's hidden units to match model A ("weights" or "activations").

    The permutation groups come from :func:`analyses.lmc.permutation.permutation_spec` (one
    traced forward of a copy of A on a few inputs of ``data``). Weight matching needs no data
    except that example batch; activation matching uses ``data`` (training split) for the
    correlations. Weight matching keeps the best of ``restarts`` coordinate descents (from the
    identity, then from random permutations). Returns an :class:`AlignResult` holding a
    permuted *copy* of B and the check ``max |B(x) - B'(x)|`` on up to ``check_samples`` inputs.
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
    x = _inputs(data, check_samples)
    start, cpu = time.perf_counter(), time.process_time()
    spec = permutation_spec(model_a, x[:8])
    if method == "weights":
        perms, sweeps = weight_matching(spec, sa, sb, seed=seed, restarts=restarts)
    else:
        train = split_batches(data)
        perms, sweeps = activation_matching(spec, model_a, model_b,
                                            train.get("train", next(iter(train.values()))),
                                            seed=seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    new_state = spec.apply(sb, perms)
    twin = load_state_copy(model_b, new_state)
    with torch.no_grad(), model_mode(model_b, "eval", warn=False), \
            model_mode(twin, "eval", warn=False):
        delta = float((model_b(x) - twin(x)).abs().max())
    names = {n for n, _ in model_b.named_parameters()}
    total = sum(sb[n].numel() for n in names)
    moved = sum(int((new_state[n] != sb[n]).sum()) for n in names)
    return AlignResult(twin, perms, method, delta, moved / max(total, 1), seconds, sweeps,
                       spec.describe(), spec.unknown_ops, cpu_seconds)


def lmc(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    *,
    align: str = "none",
    repair: bool = False,
    layerwise: bool = False,
    steps: int = 25,
    seed: int = 0,
    loss: Any = None,
    refine: bool = True,
    repair_samples: int = 2048,
    progress: bool | None = None,
) -> LMCResult:
    """Linear mode connectivity of two models of one architecture.

    ``data``: a data set name (``"digits"``) or :class:`~inspect_kit.data.DataBundle` (train and
    test splits are both evaluated), or any data form (one split, ``"data"``). ``align``:
    "none", "weights" (Git Re-Basin weight matching) or "activations" (activation matching).
    ``repair``: REPAIR the interpolated networks (statistics from the training split).
    ``layerwise``: per-module barriers (Adilova et al. 2024) on the final pair. ``steps`` uniform
    points in [0, 1], refined near the maximum. Returns an :class:`LMCResult`.
    """
    if align not in METHODS:
        raise OptionError(f"align must be one of {METHODS}, got {align!r}")
    splits = split_batches(data)
    sa, sb = model_state(model_a), model_state(model_b)
    check_pair(sa, sb)
    check_finite(sa, "model A")
    check_finite(sb, "model B")
    kw = dict(steps=steps, refine=refine, loss=loss)
    curves = {"naive": curve(model_a, sa, sb, splits, **kw)}
    aligned_info = None
    final_b = sb
    if align != "none":
        res = _align(model_a, model_b, align, data, seed=seed)
        aligned_info = res.info()
        final_b = model_state(res.model)
        curves["aligned"] = curve(model_a, sa, final_b, splits, **kw)
    repair_info = None
    if repair:
        train = splits.get("train", next(iter(splits.values())))
        x = Batches.of(train).tensors()[0][:repair_samples]
        spec = permutation_spec(model_a, x[:8])
        targets = repair_targets(model_a, spec)
        ends = (layer_stats(model_a, sa, x, targets), layer_stats(model_a, final_b, x, targets))

        def points(ts: np.ndarray) -> list[dict[str, torch.Tensor]]:
            out = []
            with bar(len(ts), "REPAIR points", progress) as pb:
                for t in ts:
                    out.append(repaired_point(model_a, sa, final_b, float(t), x, targets, ends))
                    pb.update(1)
            return out

        curves["repaired"] = curve(model_a, sa, final_b, splits, point_fn=points, **kw)
        mid = repaired_point(model_a, sa, final_b, 0.5, x, targets, ends)
        repair_info = {
            "layers": targets,
            "variance_ratio": variance_ratios(model_a, sa, final_b, x, targets, ends),
            "variance_ratio_repaired": variance_ratios(model_a, sa, final_b, x, targets, ends,
                                                       params=mid),
            "n_samples": int(len(x)),
        }
    lw = None
    if layerwise:
        lw = layerwise_barriers(model_a, sa, final_b, splits, steps=steps, loss=loss,
                                progress=progress)
    final = curves[list(curves)[-1]]
    return LMCResult(t=final["t"], loss=final["loss"], error=final["error"],
                     barrier_mean=final["barrier_mean"], barrier_linear=final["barrier_linear"],
                     curves=curves, aligned=aligned_info, repair=repair_info, layerwise=lw,
                     splits=tuple(splits), steps=int(steps), seed=int(seed))


_align = align
