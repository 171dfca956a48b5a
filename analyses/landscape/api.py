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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import LossFn
from inspect_kit.errors import OptionError
from inspect_kit.io import write_json
from inspect_kit.limits import check_time
from inspect_kit.params import check_finite, flatten, named_params
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import BUFFER_POLICIES, ENGINES, make_view

from .directions import (
    direction_info,
    filter_axes,
    interpolation_direction,
    pca_directions,
    random_directions,
)
from .path import project_trajectory
from .result import LandscapeResult
from .sharded import GridShard

DIRECTIONS = ("random", "pca", "interpolation")
MAX_POINTS = 1_000_000
BUFFER_POLICY_TEXT = {
    "keep": "keep: buffers (BatchNorm running statistics, KAN grids) are the trained model's at "
            "every point (Li et al.'s dir_type='weights'); the model's buffers are never updated",
    "follow": "follow: floating buffers are interpolated with the weights, so coordinate 1 is "
              "exactly the target model",
}


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
    h.update(flatten(theta).double().cpu().numpy().tobytes())
    for d in dirs:
        for k in sorted(d):
            h.update(k.encode())
            h.update(d[k].double().cpu().numpy().tobytes())
    h.update(np.ascontiguousarray(coords, dtype=np.float64).tobytes())
    for b in batches:
        for t in (*b.args, *[b.kwargs[k] for k in sorted(b.kwargs)], b.target):
            if isinstance(t, torch.Tensor):
                h.update(t.detach().double().cpu().numpy().tobytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _checksum(fp: Any, loss: Any, acc: Any) -> str:
    """SHA-256 of a resume file's fingerprint and values: a file edited or damaged after it
    was written is refused (files without one, from older versions, are read as they are)."""
    return hashlib.sha256(json.dumps([fp, loss, acc], allow_nan=True).encode()).hexdigest()


def _load_partial(path: Path, fp: str, n: int) -> tuple[list[float], list[float]]:
    nan = [float("nan")] * n
    if not path.exists():
        return list(nan), list(nan)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("fingerprint") != fp:
            raise OptionError(
                f"the partial landscape file {path} was written for other weights, directions, "
                "grid or data; delete it or pass another resume= path")
        if "checksum" in saved and saved["checksum"] != _checksum(fp, saved["loss"],
                                                                  saved["accuracy"]):
            raise OptionError(f"the partial landscape file {path} was modified or damaged after "
                              "it was written (its checksum differs); delete it to start over")
        fix = [float("nan") if v is None else float(v) for v in saved["loss"]]
        fixa = [float("nan") if v is None else float(v) for v in saved["accuracy"]]
        if len(fix) != n or len(fixa) != n:
            raise ValueError(f"it holds {len(fix)} points, the grid has {n}")
    except OptionError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise OptionError(f"cannot read the partial landscape file {path}: {exc}; delete it "
                          "to start over") from exc
    return fix, fixa


def _directions(model: nn.Module, view: Any, kind: str, dims: int, *, seed: int, norm: str,
                ignore: str | None, trajectory: Any, target: Any, buffers: str,
                path_out: dict[str, Any]) -> tuple[list[dict[str, torch.Tensor]], dict[str, Any]]:
    """The directions (in the model's own dtype; random draws depend on the seed only) and
    their description."""
    theta = {k: v.detach() for k, v in named_params(model).items() if k in view.sizes}
    info: dict[str, Any] = {"kind": kind, "seed": seed}
    if kind == "random":
        dirs = random_directions(model, dims, seed=seed, norm=norm, ignore=ignore, theta=theta)
        info.update(norm=norm, ignore=ignore)
    elif kind == "pca":
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
        interpolation_direction(theta, {k: tgt[k] for k in theta if k in tgt})  # names mismatch
        dirs = [view.direction_to(tgt, buffers=buffers)]
        info.update(norm="none (target - theta)", ignore=None)
    axes_map = filter_axes(model)
    info["filters"] = {k: ("whole tensor" if a == 0 else "dim 0 slices" if a == 1 else
                           "KAN edge coefficient vectors") for k, a in axes_map.items()}
    info.update(direction_info([{k: d[k].to(theta[k].dtype).cpu() for k in theta} for d in dirs],
                               theta))
    if trajectory:
        pr = project_trajectory([_state(s) for s in trajectory], theta,
                                [{k: d[k].to(theta[k].dtype).cpu() for k in theta}
                                 for d in dirs])
        path_out.update({k: v.tolist() for k, v in pr.items()})
    return dirs, info


@entry_point("landscape", renamed={"mode": "model_mode", "subset": "samples", "method": "engine"})
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
    samples: int | None = None,
    norm: str = "filter",
    ignore: str | None = "biasbn",
    include: str | Sequence[str] | None = None,
    split: str = "train",
    loss: str | LossFn | None = None,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    buffers: str | None = None,
    engine: str = "auto",
    chunk: int = 25,
    first_layer_trick: bool = True,
    accuracy: bool = True,
    subset_checks: int = 4,
    resume: str | Path | None = None,
    force: bool = False,
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
        samples: evaluate on a seeded random draw of this many samples; the result's
            ``subset_check`` compares with all the data at ``subset_checks`` points.
        buffers: "follow" (interpolation default: floating buffers such as BatchNorm statistics
            and KAN grids move with the weights, so coordinate 1 is exactly ``target``) or
            "keep" (the origin's buffers at every point; the only policy for random and PCA
            directions, Li et al.'s ``dir_type='weights'``).
        include: which parameters are perturbed (glob(s); default all trainable ones).
        split / loss / model_mode / dtype / device / batch_size: the model view's options
            (:class:`inspect_kit.view.ModelView`).
        engine / chunk: evaluation engine ("auto", "loop", "vmap") and points per vmap call.
        accuracy: also compute accuracy (classification); ``False`` gives the loss only.
        resume: a JSON file of partial results, written atomically every ~2 s; a rerun with the
            same weights, directions, grid and data continues where it stopped. The file holds
            a fingerprint of those inputs and a checksum of its values: a file written for other
            inputs, or edited afterwards, is refused.
        force: run a grid estimated (from one timed loss evaluation) to take longer than the
            kit's time limit (:data:`inspect_kit.limits.TIME_LIMIT`); grids over
            ``MAX_POINTS`` points are refused regardless.
    """
    if dims not in (1, 2):
        raise OptionError(f"dims must be 1 or 2, got {dims!r}")
    if directions not in DIRECTIONS:
        raise OptionError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    if not isinstance(steps, int) or steps < 3 or steps % 2 == 0:
        raise OptionError(f"steps must be an odd integer >= 3 so that the trained point is on "
                          f"the grid, got {steps!r}; use e.g. 25")
    if buffers is None:
        buffers = "follow" if directions == "interpolation" else "keep"
    if buffers not in BUFFER_POLICIES:
        raise OptionError(f"buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
    if buffers == "follow" and directions != "interpolation":
        raise OptionError("buffers='follow' needs a target (directions='interpolation'): random "
                          "and PCA directions do not move buffers; use buffers='keep'")
    if engine not in ENGINES:
        raise OptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    if span is not None and not (isinstance(span, (int, float)) and span > 0):
        raise OptionError(f"span must be a positive number, got {span!r}")
    n_points = steps ** dims
    if n_points > MAX_POINTS:
        most = int(round(MAX_POINTS ** (1 / dims))) // 2 * 2 - 1
        raise OptionError(f"steps={steps} gives {n_points:,} grid points (more than "
                          f"{MAX_POINTS:,}); use at most steps={most} for dims={dims}")
    check_finite(named_params(model))
    opts = dict(include=include, model_mode=model_mode, dtype=dtype, device=device, loss=loss,
                batch_size=batch_size, split=split, seed=seed)
    view = make_view(model, data, samples=samples, **opts)
    from inspect_kit.view.batches import check_finite as check_batches

    check_batches(view.batches, f"data of split {split!r}")
    t_loss = time.perf_counter()
    view.check_loss_finite(view.loss(), "at the trained point")
    t_loss = time.perf_counter() - t_loss
    check_time(n_points * t_loss, f"{n_points:,} grid points (one loss evaluation of "
               f"{t_loss * 1e3:.3g} ms each)", "use fewer steps or samples=", force=force)

    path: dict[str, Any] = {}
    dirs, info = _directions(model, view, directions, dims, seed=seed, norm=norm, ignore=ignore,
                             trajectory=trajectory, target=target, buffers=buffers,
                             path_out=path)

    # -- grid ------------------------------------------------------------------------------
    if directions == "interpolation":
        axes = [interpolation_axis(steps, 0.5 if span is None else float(span))]
    elif directions == "pca" and span is None:
        ext = np.abs(np.asarray(path["coords"])).max(0) if path else np.ones(dims)
        axes = [grid_axis(steps, 1.25 * float(e) if e > 0 else 1.0) for e in ext[:dims]]
    else:
        axes = [grid_axis(steps, 1.0 if span is None else float(span)) for _ in range(dims)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dims)
    n = len(mesh)
    coefs = torch.from_numpy(mesh).to(view.dtype)
    center_idx = tuple(int(np.flatnonzero(ax == 0.0)[0]) for ax in axes)
    ev = view.points(dirs, first_layer_trick=first_layer_trick, accuracy=accuracy)

    # -- evaluate (resumable) --------------------------------------------------------------
    rpath = Path(resume) if resume is not None else None
    fp = "" if rpath is None else _fingerprint(
        view.unflatten(view.theta), dirs, mesh, view.batches,
        {"loss": view.loss_spec, "model_mode": model_mode, "split": split,
         "buffers": buffers, "dtype": str(view.dtype)})
    shard = GridShard(rpath)  # several ranks: one resume file each
    if rpath is not None:
        loss_v, acc_v = shard.load(_load_partial, fp, n)
    else:
        loss_v, acc_v = [float("nan")] * n, [float("nan")] * n
    todo = [i for i in range(n) if math.isnan(loss_v[i])]
    shard.n_todo = len(todo)
    last_save = [time.perf_counter()]

    def save(to: Path | None = None) -> None:
        if rpath is not None:
            write_json(to or shard.path, {"fingerprint": fp, "loss": loss_v, "accuracy": acc_v,
                                          "checksum": _checksum(fp, loss_v, acc_v)})

    timing: dict[str, Any] = {"engine": None, "ms_per_point": {}, "wall_ms_per_point": None}
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
                lo_all, ac_all, timing = ev.run(coefs[todo], engine=engine, chunk=chunk,
                                                on_chunk=on_chunk)
                for j, i in enumerate(todo):
                    loss_v[i], acc_v[i] = lo_all[j], ac_all[j]
        finally:
            save()
    shard.finish(save)

    shape = tuple(len(a) for a in axes)
    loss_g = np.asarray(loss_v, dtype=float).reshape(shape)
    acc_g = np.asarray(acc_v, dtype=float).reshape(shape) if ev.classify else None

    # -- error of the sample draw ------------------------------------------------------------
    check = None
    if samples is not None:
        full = make_view(model, data, **opts)
        n_full = full.n_samples
        g = np.random.default_rng(seed)
        centre = int(np.ravel_multi_index(center_idx, shape))
        others = [i for i in range(n) if i != centre]
        pick = [centre] + list(g.choice(others, size=min(len(others), max(0, subset_checks - 1)),
                                        replace=False))
        full_loss, _, _ = full.points(dirs, first_layer_trick=first_layer_trick).run(
            coefs[pick], engine="loop")
        sub = [loss_v[i] for i in pick]
        abs_err = [abs(a - b) for a, b in zip(sub, full_loss)]
        check = {"points": mesh[pick].tolist(), "subset_loss": sub, "full_loss": full_loss,
                 "abs_error": abs_err,
                 "rel_error": [e / abs(f) if f else float("nan") for e, f in zip(abs_err, full_loss)],
                 "subset": view.n_samples, "n_full": n_full}
    else:
        n_full = view.n_samples
    bad = int(np.sum(~np.isfinite(loss_g)))
    if bad:
        warnings.warn(f"{bad} of {n} grid points have a NaN or infinite loss (far from the "
                      "trained point the network can overflow); they are drawn blank",
                      stacklevel=3)

    info["first_layer_trick"] = ev.trick is not None
    meta = {"split": split, "model_mode": model_mode, "buffers": buffers,
            "buffer_policy": BUFFER_POLICY_TEXT[buffers], "n_samples": view.n_samples,
            "n_full": n_full, "samples": samples, "steps": steps,
            "span": [float(a.max()) for a in axes], "engine": timing.get("engine"),
            "ms_per_point": timing.get("wall_ms_per_point"),
            "engine_ms_per_point": timing.get("ms_per_point"),
            "resumed_points": n - shard.n_todo, "loss": view.loss_spec,
            "dtype": str(view.dtype).removeprefix("torch.")}
    return LandscapeResult(
        axes=[a.tolist() for a in axes],
        loss=loss_g,
        center_loss=float(loss_g[center_idx]),
        directions_info=info,
        accuracy=acc_g,
        center_accuracy=None if acc_g is None else float(acc_g[center_idx]),
        path=path or None,
        subset_check=check,
        meta=meta,
        provenance={"view": view.options},
    )
