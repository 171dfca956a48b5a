"""``landscape(model, data, ...)``: loss and accuracy on a line or plane through the trained weights.

Follows Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", arXiv 1712.09913):
``f(a, b) = L(theta + a d1 + b d2)`` with filter-normalised Gaussian directions (or PCA
directions of the training trajectory, or the interpolation direction to a second set of
weights), on an odd grid whose centre is exactly the trained point. Unlike the PyPI
``loss-landscapes`` 3.0.6 package, directions are Gaussian (not U[0, 1)), biases are not
perturbed by default, the trained point is on the grid and the model is never moved.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> X, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
>>> res = landscape(net, (X, y), dims=1, steps=5, progress=False)
>>> res.axes[0]
[-1.0, -0.5, 0.0, 0.5, 1.0]
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import Batches, LossFn
from inspect_kit.errors import InspectKitError, OptionError
from inspect_kit.io import write_json
from inspect_kit.params import check_finite, flatten, named_params
from inspect_kit.progress import bar

from .directions import (
    direction_info,
    filter_axes,
    interpolation_direction,
    pca_directions,
    random_directions,
)
from .evaluate import PointEvaluator, run_points
from .path import project_trajectory
from .result import LandscapeResult
from .sharded import GridShard

DIRECTIONS = ("random", "pca", "interpolation")
BN_POLICY = ("keep: BatchNorm uses the running statistics stored with the trained weights at "
             "every point (Li et al.'s dir_type='weights'); the model's buffers are never updated")


def grid_axis(steps: int, span: float) -> np.ndarray:
    """``linspace(-span, span, steps)`` with the centre set to exactly 0 and exact symmetry."""
    half = np.linspace(0.0, span, steps // 2 + 1)
    return np.concatenate([-half[:0:-1], half])


def interpolation_axis(steps: int, margin: float) -> np.ndarray:
    """Uniform grid on ``[-margin, 1 + margin]`` that holds 0 and 1 exactly."""
    n_out = int(round(margin * (steps - 1) / (1 + 2 * margin)))
    n_in = steps - 1 - 2 * n_out
    if n_in < 1:
        raise OptionError(f"steps={steps} is too small for span={margin}; use more steps")
    return np.arange(-n_out, n_in + n_out + 1) / n_in


def _state(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return {k: v.detach() for k, v in obj.state_dict().items()}
    if isinstance(obj, Mapping):
        return {k: torch.as_tensor(v).detach() for k, v in obj.items()}
    raise OptionError(f"expected a model or a state dict, got {type(obj).__name__}")


def _fingerprint(theta: Mapping[str, torch.Tensor], dirs: Sequence[Mapping[str, torch.Tensor]],
                 coords: np.ndarray, batches: list, extra: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(flatten(theta).double().numpy().tobytes())
    for d in dirs:
        h.update(flatten({k: d[k] for k in theta}).double().numpy().tobytes())
    h.update(np.ascontiguousarray(coords, dtype=np.float64).tobytes())
    for x, y in batches:
        h.update(x.detach().double().numpy().tobytes())
        h.update(y.detach().double().numpy().tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _load_partial(path: Path, fp: str, n: int) -> tuple[list[float], list[float]]:
    nan = [float("nan")] * n
    if not path.exists():
        return list(nan), list(nan)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InspectKitError(f"cannot read the partial landscape file {path}: {exc}; delete "
                              "it to start over") from exc
    if saved.get("fingerprint") != fp:
        raise OptionError(
            f"the partial landscape file {path} was written for other weights, directions, grid "
            "or data; delete it or pass another resume= path")
    fix = [float("nan") if v is None else float(v) for v in saved["loss"]]
    fixa = [float("nan") if v is None else float(v) for v in saved["accuracy"]]
    return fix, fixa


def landscape(
    model: nn.Module,
    data: Any,
    *,
    dims: int = 2,
    steps: int = 25,
    span: float | None = None,
    directions: str = "random",
    trajectory: Sequence[Mapping[str, torch.Tensor]] | None = None,
    target: nn.Module | Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    subset: int | None = None,
    norm: str = "filter",
    ignore: str | None = "biasbn",
    split: str = "train",
    loss: str | LossFn | None = None,
    mode: str | None = "eval",
    bn: str = "keep",
    method: str = "auto",
    chunk: int = 25,
    first_layer_trick: bool = True,
    accuracy: bool = True,
    subset_checks: int = 4,
    resume: str | Path | None = None,
    progress: bool | None = None,
) -> LandscapeResult:
    """Loss (and accuracy) of ``model`` on ``theta + a d1 (+ b d2)`` over an odd grid.

    Args:
        dims: 1 (a line) or 2 (a plane). ``directions="interpolation"`` is 1-D.
        steps: odd number of grid points per axis (the trained point is the centre).
        span: half-width of the grid in units of the directions. Default 1.0 for random
            (filter-normalised) directions; for PCA 1.25 x the path's extent on each axis; for
            interpolation the margin beyond [0, 1] (default 0.5, Li et al.'s -0.5:1.5).
        directions: "random" (Gaussian, ``norm``/``ignore`` normalised, ``seed``), "pca" (first
            principal directions of ``trajectory``, a list of state dicts), "interpolation"
            (``target - theta``; coordinate 1 is ``target``).
        trajectory: snapshots for PCA and for the optimiser path overlay (projected on the
            plane, with residuals).
        subset: evaluate on a seeded random subset of this many samples; the result's
            ``subset_check`` compares with the full data at ``subset_checks`` points.
        split / loss / mode: data split ("train"/"test"), loss (default by task), model mode
            (default "eval", restored afterwards).
        bn: BatchNorm policy; only "keep" (see ``BN_POLICY``).
        method / chunk: engine ("auto", "loop", "vmap") and points per vmap call.
        accuracy: also compute accuracy (classification); ``False`` gives the loss only.
        resume: a JSON file of partial results, written atomically every ~2 s; a rerun with the
            same weights, directions, grid and data continues where it stopped.
    """
    if dims not in (1, 2):
        raise OptionError(f"dims must be 1 or 2, got {dims!r}")
    if directions not in DIRECTIONS:
        raise OptionError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    if not isinstance(steps, int) or steps < 3 or steps % 2 == 0:
        raise OptionError(f"steps must be an odd integer >= 3 so that the trained point is on "
                          f"the grid, got {steps!r}; use e.g. 25")
    if bn != "keep":
        raise OptionError(f"bn={bn!r} is not supported; the only BatchNorm policy is 'keep' "
                          "(running statistics of the trained model at every point)")
    if span is not None and not (isinstance(span, (int, float)) and span > 0):
        raise OptionError(f"span must be a positive number, got {span!r}")
    theta = named_params(model)
    check_finite(theta)
    if not theta:
        raise OptionError("the model has no trainable parameters to perturb")
    batches_all = Batches.of(data, split=split)
    batches_all.check_finite()

    # -- directions ------------------------------------------------------------------------
    info: dict[str, Any] = {"kind": directions, "seed": seed}
    if directions == "random":
        dirs = random_directions(model, dims, seed=seed, norm=norm, ignore=ignore, theta=theta)
        info.update(norm=norm, ignore=ignore)
    elif directions == "pca":
        if not trajectory:
            raise OptionError("directions='pca' needs trajectory= (a list of state dicts, e.g. "
                              "zoo.train.fit(..., snapshot_every=1).snapshots)")
        dirs, ratio, sv = pca_directions([_state(s) for s in trajectory], theta, dims,
                                         ignore=ignore)
        info.update(norm="none (unit principal directions)", ignore=ignore,
                    explained_variance_ratio=ratio.tolist(), singular_values=sv.tolist(),
                    n_snapshots=len(trajectory))
    else:
        if target is None:
            raise OptionError("directions='interpolation' needs target= (a second model or "
                              "state dict with the same architecture)")
        if dims != 1:
            raise OptionError("directions='interpolation' gives a line: use dims=1")
        tgt = _state(target)
        dirs = [interpolation_direction(theta, {k: tgt[k] for k in theta if k in tgt})]
        info.update(norm="none (target - theta)", ignore=None)
    axes_map = filter_axes(model)
    info["filters"] = {k: ("whole tensor" if a == 0 else "dim 0 slices" if a == 1 else
                           "KAN edge coefficient vectors") for k, a in axes_map.items()}
    info.update(direction_info(dirs, theta))

    path = None
    if trajectory:
        pr = project_trajectory([_state(s) for s in trajectory], theta, dirs)
        path = {k: v.tolist() for k, v in pr.items()}

    # -- grid ------------------------------------------------------------------------------
    if directions == "interpolation":
        axes = [interpolation_axis(steps, 0.5 if span is None else float(span))]
    elif directions == "pca" and span is None:
        ext = np.abs(np.asarray(path["coords"])).max(0) if path else np.ones(dims)
        axes = [grid_axis(steps, 1.25 * float(e) if e > 0 else 1.0) for e in ext[:dims]]
    else:
        axes = [grid_axis(steps, 1.0 if span is None else float(span)) for _ in range(dims)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dims)
    coefs = torch.from_numpy(mesh).to(flatten(theta).dtype)
    center_idx = tuple(int(np.flatnonzero(ax == 0.0)[0]) for ax in axes)

    # -- data subset -----------------------------------------------------------------------
    batches = [(x, y) for x, y in batches_all]
    n_full = sum(len(x) for x, _ in batches)
    if subset is not None:
        if not isinstance(subset, int) or subset < 1:
            raise OptionError(f"subset must be a positive integer, got {subset!r}")
        X, Y = batches_all.tensors()
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(len(X), generator=g)[: min(subset, len(X))].sort().values
        batches = [(X[idx], Y[idx])]

    ev = PointEvaluator(model, Batches.of(batches), theta, dirs, loss=loss, mode=mode,
                        first_layer_trick=first_layer_trick, accuracy=accuracy)

    # -- evaluate (resumable) --------------------------------------------------------------
    n = len(coefs)
    rpath = Path(resume) if resume is not None else None
    fp = "" if rpath is None else _fingerprint(
        theta, dirs, mesh, batches, {"loss": repr(loss), "mode": mode, "split": split})
    shard = GridShard(rpath)  # several ranks: split the points, one rank file each
    if rpath is not None:
        loss_v, acc_v = shard.load(_load_partial, fp, n)
    else:
        loss_v, acc_v = [float("nan")] * n, [float("nan")] * n
    todo = shard.mine([i for i in range(n) if math.isnan(loss_v[i])])
    last_save = [time.perf_counter()]

    def save(to: Path | None = None) -> None:
        if rpath is not None:
            write_json(to or shard.path, {"fingerprint": fp, "loss": loss_v, "accuracy": acc_v})

    timing: dict[str, Any] = {"method": None, "ms_per_point": {}, "wall_ms_per_point": None}
    with bar(total=n, desc="landscape", progress=progress, initial=n - len(todo)) as pbar:

        def on_chunk(idx: list[int], lo: list[float], ac: list[float]) -> None:
            for j, i in enumerate(idx):
                loss_v[todo[i]], acc_v[todo[i]] = lo[j], ac[j]
            pbar.update(len(idx))
            if time.perf_counter() - last_save[0] > 2.0:
                save()
                last_save[0] = time.perf_counter()

        try:
            if todo:
                _, _, timing = run_points(ev, coefs[todo], method=method, chunk=chunk,
                                          on_chunk=on_chunk)
        finally:
            save()
    loss_v, acc_v = shard.gather(loss_v, acc_v)
    shard.finish(save)

    shape = tuple(len(a) for a in axes)
    loss_g = np.asarray(loss_v, dtype=float).reshape(shape)
    acc_g = np.asarray(acc_v, dtype=float).reshape(shape) if ev.classify else None

    # -- subset error report ---------------------------------------------------------------
    check = None
    if subset is not None:
        g = np.random.default_rng(seed)
        others = [i for i in range(n) if i != int(np.ravel_multi_index(center_idx, shape))]
        pick = [int(np.ravel_multi_index(center_idx, shape))]
        pick += list(g.choice(others, size=min(len(others), max(0, subset_checks - 1)),
                              replace=False))
        full_ev = PointEvaluator(model, Batches.of([(x, y) for x, y in batches_all]), theta,
                                 dirs, loss=loss, mode=mode, first_layer_trick=first_layer_trick)
        full_loss, _ = full_ev.evaluate(coefs[pick], "loop")
        sub = [loss_v[i] for i in pick]
        abs_err = [abs(a - b) for a, b in zip(sub, full_loss)]
        check = {"points": mesh[pick].tolist(), "subset_loss": sub, "full_loss": full_loss,
                 "abs_error": abs_err,
                 "rel_error": [e / abs(f) if f else float("nan") for e, f in zip(abs_err, full_loss)],
                 "subset": len(batches[0][0]), "n_full": n_full}

    info["first_layer_trick"] = ev.trick is not None
    meta = {"split": split, "mode": mode, "bn_policy": BN_POLICY, "n_samples": ev.n,
            "n_full": n_full, "subset": subset, "steps": steps,
            "span": [float(a.max()) for a in axes], "method": timing.get("method"),
            "ms_per_point": timing.get("wall_ms_per_point"),
            "engine_ms_per_point": timing.get("ms_per_point"),
            "resumed_points": n - shard.n_todo, "loss": "default" if loss is None else repr(loss)}
    return LandscapeResult(
        axes=[a.tolist() for a in axes],
        loss=loss_g,
        center_loss=float(loss_g[center_idx]),
        directions_info=info,
        accuracy=acc_g,
        center_accuracy=None if acc_g is None else float(acc_g[center_idx]),
        path=path,
        subset_check=check,
        meta=meta,
    )
