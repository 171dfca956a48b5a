"""Symbolic regression of a trained KAN: sample edges -> attribute -> fit -> select -> compose.

:func:`symbolic` never modifies ``model`` (it reads the weights through the adapter; pruning is
applied to the *formula*: an edge whose pykan-style backward attribution is below ``prune``
becomes its constant mean value). From data to formula (train, prune, refine, then this):
:func:`discover`.

Method: Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks" (arXiv 2404.19756) §2.5; fitting,
selection and composition as in :mod:`.fit`, :mod:`.select`, :mod:`.formula`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import NonFiniteError, OptionError, SizeLimitError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point

from . import deadline, export
from . import formula as fm
from . import routes as rt
from .fit import fit_edges
from .library import Primitive, resolve, to_spec
from .result import SymbolicResult
from .select import RULES, choose


def _edge_fn(row: dict[str, Any], prims: dict[str, Primitive]) -> Any:
    if row["function"] == "0":
        return lambda v: fm.edge_expr(None, row["params"], v)
    prim = prims[row["function"]]
    return lambda v: fm.edge_expr(prim, row["params"], v, row.get("poly"))


@entry_point("symbolic", renamed={"max_samples": "samples"})
def symbolic(
    model: Any,
    data: Any,
    *,
    library: Iterable[str | Primitive] | str | None = None,
    prune: float = 0.01,
    truth: str | None = None,
    split: str = "train",
    samples: int | None = 2000,
    seed: int = 0,
    progress: bool | None = None,
    n_points: int = 201,
    snap: bool = True,
    snap_min_r2: float = 0.999,
    refit_steps: int = 60,
    simplify_seconds: float = 5.0,
    sympy_seconds: float = 20.0,
    rule: str = "tolerance",
    structure: bool = True,
) -> SymbolicResult:
    """The symbolic formula of a KAN ``model`` on ``data`` (training split by default).

    Up to three routes per output (:mod:`.routes`): the formula composed edge by edge, and
    (``structure=True``) one built from separable blocks and generalised additivity found by
    querying the network, and a sparse rational function of the inputs (``P/Q`` or
    ``sqrt(P/Q)``, :mod:`.rational`) when one fits the data at least as well as the network.
    All are refitted, snapped and simplified; a later route's formula replaces the one before
    when :func:`.routes.prefer` says so (``details["routes"]``). No
    returned formula is non-finite on the data: a non-finite candidate falls back to the other
    route with a warning, and when none is finite :class:`NonFiniteError` is raised.

    Args:
        library: primitive names / sympy strings / :class:`Primitive` (default: the full library).
        prune: attribution threshold; edges scoring below it become constants (never others).
        truth: ground-truth expression in ``x1..xn`` for the exact-recovery check.
        split, samples: the data split and a seeded random draw of that many samples (None: all).
            Held-out R^2 uses the test split (when ``split="train"`` and there is one), else the
            samples of the split not drawn.
        seed: the sample draw's seed (and the exact-check points').
        snap: snap constants to simple values when it does not hurt the fit (only for outputs
            whose refitted formula already has R^2 >= ``snap_min_r2`` against the data).
        sympy_seconds: time limit of every symbolic step (composition, refits, snapping,
            evaluation, the exact check), in CPU seconds of the calling thread with a wall cap
            of :data:`analyses.symbolic.deadline.WALL_FACTOR` times it (so a loaded machine
            gives the same formula, later); the structure search gets four times it;
            ``simplify_seconds`` is the limit of each ``sympy.simplify``.
    """
    from inspect_kit.kan import adapter_for
    from inspect_kit.kan.attribution import attribute
    from inspect_kit.kan.sampling import data_tensors, sample_edges

    if not prune >= 0:
        raise OptionError(f"prune must be a non-negative attribution threshold, got {prune}")
    if not (sympy_seconds > 0 and simplify_seconds > 0):
        raise OptionError("sympy_seconds and simplify_seconds must be positive time limits, got "
                          f"{sympy_seconds} and {simplify_seconds}")
    if rule not in RULES:
        raise OptionError(f"rule must be one of {RULES}, got {rule!r}")
    lib = resolve(library)
    prims = {p.name: p for p in lib}
    adapter = adapter_for(model)
    if truth is not None:  # refuse a bad truth before any work (restricted parser, no eval)
        fm.parse_truth(truth, fm.input_symbols(adapter.widths[0]))
    X, Y = data_tensors(data, split=split, samples=samples, seed=seed)
    held = _held_out(data, split, samples, seed, len(X))
    timings: dict[str, float] = {}
    with bar(5, "symbolic", progress) as pbar:
        t = time.perf_counter()
        edges_s = sample_edges(adapter, (X, Y), n_points=n_points)
        att = attribute(adapter, (X, Y), knockout=False)
        scores = np.array([float(att.edge_scores[l][j, i]) for l, j, i in edges_s.index])
        timings["sample_and_attribute"] = time.perf_counter() - t
        pbar.update(1)

        masked = edges_s.masked.numpy()
        xw = (edges_s.x[:, -1] - edges_s.x[:, 0]).abs().numpy()
        live = ~masked & (scores >= prune) & (xw > 0)
        rows = np.nonzero(live)[0]
        t = time.perf_counter()
        n_obs = edges_s.x_obs.shape[1]
        keep = torch.linspace(0, n_obs - 1, min(n_obs, 500)).round().long().unique()
        chosen: list[dict[str, Any]] = [dict() for _ in edges_s.index]
        if len(rows):
            table = fit_edges(edges_s.x[rows], edges_s.y[rows], lib,
                              x_val=edges_s.x_obs[rows][:, keep], y_val=edges_s.y_obs[rows][:, keep],
                              progress=False)
            for r, c in zip(rows, choose(table, rule=rule, n_val=len(keep))):
                chosen[r] = c
        timings["fit"] = time.perf_counter() - t
        pbar.update(1)
        for r in np.nonzero(~live)[0]:
            chosen[r] = {"function": "0", "zeroed": True, "r2": None, "r2_val": None,
                         "complexity": 0.0, "pareto": [],
                         "params": {"a": 0.0, "b": 0.0, "c": 0.0,
                                    "d": 0.0 if masked[r] else float(edges_s.y_obs[r].mean())}}
        edges = []
        for r, (l, j, i) in enumerate(edges_s.index):
            row = {"layer": l, "out": j, "in": i, **chosen[r], "attribution": float(scores[r]),
                   "masked": bool(masked[r])}
            row.pop("column", None)
            edges.append(row)

        t = time.perf_counter()
        syms = fm.input_symbols(adapter.widths[0])
        Xd = adapter.prepare_input(X).double()
        with torch.no_grad():
            y_net = adapter.forward_from_edges(adapter.prepare_input(X)).double()
        y_dat = Y.double().reshape(len(Y), -1) if Y is not None and Y.is_floating_point() else None
        if y_dat is not None and y_dat.shape[1] != y_net.shape[1]:
            y_dat = None
        sub = torch.linspace(0, len(Xd) - 1, min(len(Xd), 512)).round().long().unique()
        ctx = rt.Context(syms, Xd, y_net, y_dat, sub, sympy_seconds, simplify_seconds,
                         refit_steps, snap, snap_min_r2)
        edge_map = {(e["layer"], e["out"], e["in"]): _edge_fn(e, prims) for e in edges
                    if not e["masked"]}
        from_edges, edge_info = rt.edge_route(adapter, edge_map, ctx)
        timings["compose_refit_snap"] = time.perf_counter() - t
        pbar.update(1)

        t = time.perf_counter()
        final, fit_scores, routes, snapped, exprs = [], [], [], [], []
        has_data = y_dat is not None
        for k in range(y_net.shape[1]):
            cands = []
            route: dict[str, Any] = {"edges": dict(edge_info[k])}
            if from_edges is not None:
                s = rt.score(from_edges[k], ctx, k)
                route["edges"].update(formula=str(from_edges[k]), **s)
                cands.append(("edges", from_edges[k], s))
            if structure:
                cand, route["structure"] = rt.structure_route(adapter, ctx, k, lib, seed)
                reductions = route["structure"].pop("_reductions", [])
                if cand is not None:
                    s = rt.score(cand, ctx, k)
                    route["structure"].update(s)
                    cands.append(("structure", cand, s))
                cand, route["rational"] = rt.rational_route(ctx, k, reductions)
                if cand is not None:
                    s = rt.score(cand, ctx, k)
                    route["rational"].update(s)
                    cands.append(("rational", cand, s))
            pick = rt.choose_candidate(cands, has_data)
            if pick is None:
                if not cands:
                    raise SizeLimitError(
                        f"output {k + 1}: no formula ({_why(route)}); raise sympy_seconds or "
                        "prune the model to fewer edges")
                raise NonFiniteError(
                    f"output {k + 1}: no route gave a formula that is finite on the data "
                    f"({_why(route)}); retrain the model or pass a smaller library")
            bad = [c[0] for c in cands if c[2].get("r2_model") is None]
            if bad:
                warnings.warn(f"output {k + 1}: the {' and '.join(bad)} route's formula is not "
                              f"finite on the data; returning the {pick[0]} route's formula",
                              RuntimeWarning, stacklevel=3)
            route["chosen"] = pick[0]
            exprs.append({name: e for name, e, _ in cands})
            if pick[0] == "structure" or edge_info[k].get("snapped"):
                snapped.append(k)
            final.append(pick[1])
            fit_scores.append(pick[2])
            routes.append(route)
        timings["structure"] = time.perf_counter() - t
        pbar.update(1)

        t = time.perf_counter()
        held_scores = _held_scores(adapter, final, ctx, held)
        for k, route in enumerate(routes):
            for name, e in exprs[k].items():
                route[name]["held_out"] = (held_scores[k] if name == route["chosen"] else
                                           _held_scores(adapter, [e], ctx, held, only=k)[0])
        exact, detail = None, None
        if truth is not None:
            box = np.stack([Xd.min(0).values.numpy(), Xd.max(0).values.numpy()], 1)
            detail = deadline.call(fm.exact_match, final[0], truth, syms, box, seed=seed,
                                   symbolic_seconds=simplify_seconds, seconds=sympy_seconds,
                                   fallback=None)
            if detail is None:
                detail = {"exact": None, "note": f"the check did not finish in {sympy_seconds:g} s"}
            exact = detail["exact"]
        timings["check"] = time.perf_counter() - t
        pbar.update(1)

    one = len(final) == 1
    text = str(final[0]) if one else "; ".join(f"y{k + 1} = {e}" for k, e in enumerate(final))
    curves = [{"x": edges_s.x[r, :: max(1, n_points // 100)].tolist(),
               "y": edges_s.y[r, :: max(1, n_points // 100)].tolist()} for r in range(len(edges))]

    def mean(vals: list[float | None]) -> float | None:
        return float(np.mean(vals)) if vals and all(v is not None for v in vals) else None

    details = {
        "latex": [deadline.call(export.to_latex, e, seconds=sympy_seconds, fallback="")
                  for e in final],
        "n_ops": sum(s["n_ops"] or 0 for s in fit_scores),
        "formula_raw": [i.get("raw") for i in edge_info],
        "singularities": [d for e in final for d, _ in deadline.call(
            export.singularities, e, seconds=sympy_seconds, fallback=[])],
        "held_out": None if held is None else {"source": held[2], "n_samples": int(len(held[0])),
                                               "per_output": held_scores},
        "exact_check": detail, "routes": routes, "timings": timings, "snapped_outputs": snapped,
        "library": to_spec(lib),
        "n_inputs": adapter.widths[0], "family": adapter.family, "widths": list(adapter.widths),
        "prune": prune, "n_samples": int(len(X)), "curves": curves, "seed": seed,
        "note": ("model not modified: pruning applies to the formula (edges below the attribution "
                 "threshold become constants); constants refitted to the network by L-BFGS"),
    }
    return SymbolicResult(
        edges=edges, formula=text,
        formula_r2_model=float(np.mean([s["r2_model"] for s in fit_scores])),
        formula_r2_data=mean([s["r2_data"] for s in fit_scores]) if has_data else None,
        exact=exact, details=details,
        formula_r2_model_held_out=mean([h["r2_model"] for h in held_scores]) if held else None,
        formula_r2_data_held_out=(mean([h["r2_data"] for h in held_scores])
                                  if held and held[1] is not None else None),
        route="; ".join(r["chosen"] for r in routes))


def _why(route: dict[str, Any]) -> str:
    parts = []
    for name in ("edges", "structure"):
        info = route.get(name) or {}
        msg = info.get("error") or "; ".join(info.get("notes", [])) or (
            "not finite" if info.get("formula") else "no candidate")
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def _held_out(data: Any, split: str, samples: int | None, seed: int, n_fit: int,
              ) -> tuple[torch.Tensor, torch.Tensor | None, str] | None:
    """``(X, y, source)`` of the held-out samples: the test split when fitting on a training
    split that has one, else the samples of ``split`` outside the seeded draw (the kit's draw:
    the first ``samples`` of ``randperm(n, seed)``), else None."""
    from inspect_kit.data import DataBundle, load_data
    from inspect_kit.kan.sampling import data_tensors

    bundle = data
    if isinstance(data, str):
        bundle = load_data(data, seed=seed)
    if split == "train" and isinstance(bundle, DataBundle) and bundle.x_test is not None:
        Xh, Yh = data_tensors(bundle, split="test", samples=samples, seed=seed)
        return Xh, Yh, "test split"
    Xa, Ya = data_tensors(bundle, split=split, samples=None, seed=seed)
    if samples is None or len(Xa) <= n_fit:
        return None
    rest = torch.randperm(len(Xa), generator=torch.Generator().manual_seed(int(seed)))[samples:]
    rest = rest.sort().values
    return Xa[rest], (Ya[rest] if Ya is not None else None), f"{split} samples not drawn"


def _held_scores(adapter: Any, exprs: list[Any], ctx: rt.Context, held: Any,
                 only: int | None = None) -> list[dict[str, Any]]:
    """R^2 of each output's formula on the held-out samples, against the network and the data."""
    if held is None:
        return [{"r2_model": None, "r2_data": None} for _ in exprs]
    Xh = adapter.prepare_input(held[0]).double()
    with torch.no_grad():
        yn = adapter.forward_from_edges(adapter.prepare_input(held[0])).double()
    yd = held[1].double().reshape(len(Xh), -1) if held[1] is not None else None
    out = []
    for idx, e in enumerate(exprs):
        k = idx if only is None else only
        ydk = yd[:, k] if yd is not None and yd.shape[1] == yn.shape[1] else None
        s = rt.score(e, ctx, k, X=Xh, y_net=yn[:, k], y_dat=ydk)
        out.append({"r2_model": s["r2_model"], "r2_data": s["r2_data"] if ydk is not None
                    else None})
    return out


def discover(
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
    prune: float = 0.01,
    truth: str | None = None,
    library: Iterable[str | Primitive] | str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[SymbolicResult, Any]:
    """Data -> trained, pruned zoo KAN -> formula (pykan's README recipe, with our fitter).

    Trains by :func:`inspect_kit.zoo.kan_recipe.train_pruned_kan` (a ``model`` passed in is
    deep-copied first, never modified), then runs :func:`symbolic` on the training split.
    ``truth`` defaults to the formula of a ``formula:NAME`` data set.
    Returns ``(result, trained_pruned_model)``.
    """
    from inspect_kit.data import DataBundle, load_data
    from inspect_kit.zoo.kan_recipe import train_pruned_kan

    bundle = load_data(data, seed=seed) if isinstance(data, str) else data
    if truth is None and isinstance(bundle, DataBundle):
        truth = bundle.truth
    train = bundle.split("train") if isinstance(bundle, DataBundle) else bundle
    trained = train_pruned_kan(train, model=model, width=width, grid=grid, k=k, lamb=lamb,
                               lamb_entropy=lamb_entropy, epochs=epochs,
                               retrain_epochs=retrain_epochs, refine_grid=refine_grid,
                               prune_threshold=prune, seed=seed, progress=progress)
    res = symbolic(trained, train, library=library, prune=prune, truth=truth, seed=seed,
                   progress=progress)
    return res, trained


__all__ = ["SymbolicResult", "discover", "symbolic"]
