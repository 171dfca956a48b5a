"""Symbolic regression of a trained KAN: sample edges -> attribute -> fit -> select -> compose.

:func:`symbolic` never modifies ``model`` (it reads the weights through the adapter; pruning is
applied to the *formula*: an edge whose pykan-style backward attribution is below ``prune``
becomes its constant mean value). From data to formula (train, prune, refine, then this):
:func:`discover`.

Method: Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks" (arXiv 2404.19756) §2.5; fitting,
selection and composition as in :mod:`.fit`, :mod:`.select`, :mod:`.formula`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point

from . import export
from . import formula as fm
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
    rule: str = "tolerance",
    structure: bool = True,
) -> SymbolicResult:
    """The symbolic formula of a KAN ``model`` on ``data`` (training split by default).

    Two routes per output: the formula composed edge by edge, and (``structure=True``) one built
    from separable blocks found by querying the network (:mod:`.structure`, AI Feynman's
    additive/multiplicative tests). Both are refitted, snapped and simplified; the structure
    formula replaces the edge one when :func:`_prefer` says so (``details["routes"]``).

    Args:
        library: primitive names / sympy strings / :class:`Primitive` (default: the full library).
        prune: attribution threshold; edges scoring below it become constants (never others).
        truth: ground-truth expression in ``x1..xn`` for the exact-recovery check.
        split, samples: the data split and a seeded random draw of that many samples (None: all).
        seed: the sample draw's seed (and the exact-check points').
        snap: snap constants to simple values when it does not hurt the fit (only for outputs
            whose refitted formula already has R^2 >= ``snap_min_r2`` against the data).
    """
    from inspect_kit.kan import adapter_for
    from inspect_kit.kan.attribution import attribute
    from inspect_kit.kan.sampling import data_tensors, sample_edges

    if not prune >= 0:
        raise OptionError(f"prune must be a non-negative attribution threshold, got {prune}")
    if rule not in RULES:
        raise OptionError(f"rule must be one of {RULES}, got {rule!r}")
    lib = resolve(library)
    prims = {p.name: p for p in lib}
    adapter = adapter_for(model)
    X, Y = data_tensors(data, split=split, samples=samples, seed=seed)
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
        edge_map = {(e["layer"], e["out"], e["in"]): _edge_fn(e, prims) for e in edges
                    if not e["masked"]}
        outs = fm.compose(adapter, edge_map)
        syms = fm.input_symbols(adapter.widths[0])
        Xd = adapter.prepare_input(X).double()
        with torch.no_grad():
            y_net = adapter.forward_from_edges(adapter.prepare_input(X)).double()
        y_dat = Y.double().reshape(len(Y), -1) if Y.is_floating_point() else None
        raw = [str(o) for o in outs]
        sub = torch.linspace(0, len(Xd) - 1, min(len(Xd), 512)).round().long().unique()
        Xs, y_net_s = Xd[sub], y_net[sub]
        fitted = [fm.refit(o, syms, Xs, y_net_s[:, k], steps=refit_steps) for k, o in enumerate(outs)]
        timings["compose_refit"] = time.perf_counter() - t
        pbar.update(1)

        t = time.perf_counter()
        ok_data = y_dat is not None and y_dat.shape[1] == len(fitted)

        def polish(e: Any, k: int) -> tuple[Any, bool]:
            return fm.polish(e, syms, Xs, y_net_s[:, k], y_dat[sub, k] if ok_data else None,
                             X_check=Xd, snap_constants=snap, snap_min_r2=snap_min_r2,
                             refit_steps=refit_steps, simplify_seconds=simplify_seconds)

        final, snapped = [], []
        for k, e in enumerate(fitted):
            e, did = polish(e, k)
            if did:
                snapped.append(k)
            final.append(e)
        timings["snap_simplify"] = time.perf_counter() - t
        t = time.perf_counter()
        routes: list[dict[str, Any]] = []
        for k in range(len(final)):
            target = y_dat[:, k] if ok_data else y_net[:, k]
            with np.errstate(all="ignore"):
                r2_edge = fm.r2_score(fm.evaluate(final[k], syms, Xd), target)
            r2_edge = r2_edge if math.isfinite(r2_edge) else -1e300
            route = {"chosen": "edges", "edges": {"formula": str(final[k]), "r2": r2_edge,
                                                  "n_ops": fm.op_count(final[k])}}
            if structure:
                cand, route["structure"] = _structure_route(
                    adapter, k, Xd, y_net, y_dat if ok_data else None, lib, syms, seed, polish,
                    refit_steps)
                if cand is not None and _prefer(route["structure"], route["edges"]):
                    final[k] = cand
                    route["chosen"] = "structure"
                    if ok_data and k not in snapped:
                        snapped.append(k)
            routes.append(route)
        timings["structure"] = time.perf_counter() - t
        pbar.update(1)

        with np.errstate(all="ignore"):
            preds = [fm.evaluate(e, syms, Xd) for e in final]
        r2_model = float(np.mean([fm.r2_score(p, y_net[:, k]) for k, p in enumerate(preds)]))
        r2_data = (float(np.mean([fm.r2_score(p, y_dat[:, k]) for k, p in enumerate(preds)]))
                   if y_dat is not None and y_dat.shape[1] == len(preds) else None)
        exact, detail = None, None
        if truth is not None:
            box = np.stack([Xd.min(0).values.numpy(), Xd.max(0).values.numpy()], 1)
            detail = fm.exact_match(final[0], truth, syms, box, seed=seed)
            exact = detail["exact"]
        pbar.update(1)

    one = len(final) == 1
    text = str(final[0]) if one else "; ".join(f"y{k + 1} = {e}" for k, e in enumerate(final))
    curves = [{"x": edges_s.x[r, :: max(1, n_points // 100)].tolist(),
               "y": edges_s.y[r, :: max(1, n_points // 100)].tolist()} for r in range(len(edges))]
    details = {
        "latex": [export.to_latex(e) for e in final],
        "n_ops": sum(fm.op_count(e) for e in final),
        "formula_raw": raw,
        "singularities": [d for e in final for d, _ in export.singularities(e)],
        "exact_check": detail, "routes": routes, "timings": timings, "snapped_outputs": snapped,
        "library": to_spec(lib),
        "n_inputs": adapter.widths[0], "family": adapter.family, "widths": list(adapter.widths),
        "prune": prune, "n_samples": int(len(X)), "curves": curves, "seed": seed,
        "note": ("model not modified: pruning applies to the formula (edges below the attribution "
                 "threshold become constants); constants refitted to the network by L-BFGS"),
    }
    return SymbolicResult(edges=edges, formula=text, formula_r2_model=r2_model,
                          formula_r2_data=r2_data, exact=exact, details=details)


def _prefer(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether route ``new`` beats ``old``: fewer operations with ``1 - R^2`` at most twice the
    other's (+1e-9), or equal-or-more operations with ``1 - R^2`` under half the other's."""
    if new.get("r2") is None or not math.isfinite(new["r2"]):
        return False
    e_new, e_old = max(0.0, 1.0 - new["r2"]), max(0.0, 1.0 - old["r2"])
    if new["n_ops"] < old["n_ops"]:
        return e_new <= 2.0 * e_old + 1e-9
    return e_new < 0.5 * e_old


def _structure_route(adapter: Any, k: int, Xd: torch.Tensor, y_net: torch.Tensor,
                     y_dat: torch.Tensor | None, lib: list[Primitive], syms: list[Any], seed: int,
                     polish: Any, refit_steps: int) -> tuple[Any, dict[str, Any]]:
    """Separable-structure candidate for output ``k`` (see :mod:`.structure`), polished."""
    from .structure import separable_formula

    target = y_dat[:, k] if y_dat is not None else y_net[:, k]
    # separability tolerance: 10x the network's own relative error on the data (>= 1e-3)
    rel = math.sqrt(max(0.0, 1.0 - fm.r2_score(y_net[:, k], target))) if y_dat is not None else 0
    tol = min(0.05, max(1e-3, 10.0 * rel))

    def net(Z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return adapter.forward_from_edges(Z)[:, k].double()

    try:
        noise = float(((y_net[:, k] - y_dat[:, k]) ** 2).mean()) if y_dat is not None else 0.0
        expr, info = separable_formula(net, Xd, lib, syms, tol=tol, seed=seed, noise_mse=noise)
    except (OptionError, ValueError, RuntimeError) as err:  # a failed candidate is not fatal
        return None, {"error": f"{type(err).__name__}: {err}"}
    if expr is None:
        return None, {"info": info, "formula": None}
    expr = fm.fold_scale(fm.fold_pow(fm.fold_exp(expr)))  # one constant per scale
    sub = torch.linspace(0, len(Xd) - 1, min(len(Xd), 512)).round().long().unique()
    expr = fm.refit(expr, syms, Xd[sub], y_net[sub, k], steps=refit_steps)
    expr, _ = polish(expr, k)
    with np.errstate(all="ignore"):
        r2 = fm.r2_score(fm.evaluate(expr, syms, Xd), target)
    return expr, {"info": info, "formula": str(expr), "r2": r2 if math.isfinite(r2) else None,
                  "n_ops": fm.op_count(expr)}




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
