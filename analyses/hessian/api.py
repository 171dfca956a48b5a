"""``hessian(model, data, ...)``: eigenvalues, trace, spectral density and blocks in one call.

The estimators live one per file (:mod:`.lanczos`, :mod:`.hutchinson`, :mod:`.hutchpp`,
:mod:`.slq`, :mod:`.blocks`, :mod:`.exact`) and all consume one
:class:`~.operator.HessianOperator`; this module only wires options to them and packs a
:class:`~.result.HessianResult`.

Methods: ``"iterative"`` (default; Lanczos + Hutch++ + SLQ on HVPs) and ``"exact"`` (dense
Hessian by ``torch.func``, small models only; every number exact, the "density" is the
broadened exact spectrum). Backends: ``"native"`` (ours) and ``"pyhessian"`` (ours, with
PyHessian's top eigenvalues and trace on the same inputs under ``reference``; see
:mod:`.pyhessian_backend` for what PyHessian cannot do).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import LossFn
from inspect_kit.errors import OptionError
from inspect_kit.provenance import entry_point
from inspect_kit.view import make_view

from . import budget
from .blocks import block_spectra, group_parameters
from .hutchinson import hutchinson_trace
from .hutchpp import hutchpp_trace
from .lanczos import WHICH, _select, lanczos_eigs
from .operator import CURVATURES, HessianOperator
from .result import HessianResult
from .slq import broaden, log_view, slq_density

BACKENDS = ("native", "pyhessian")
METHODS = ("iterative", "exact")
TRACE_METHODS = ("hutch++", "hutchinson")


def _density_dict(d: Any) -> dict[str, Any]:
    return {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}


@entry_point("hessian", renamed={"mode": "model_mode"}, tools=("pyhessian",))
def hessian(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None = None,
    curvature: str = "hessian",
    mc_samples: int = 1,
    top_k: int = 5,
    which: str = "largest",
    trace: bool = True,
    trace_budget: int = 100,
    trace_method: str = "hutch++",
    density: bool = False,
    density_probes: int = 10,
    density_steps: int = 100,
    density_width: float | None = None,
    density_width_fraction: float = 0.01,
    density_threshold: float | None = None,
    density_deflate: int = 20,
    blocks: str | Mapping[str, str | Sequence[str]] | None = None,
    block_top_k: int = 3,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
    split: str = "train",
    samples: int | None = None,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    vectorize: bool = True,
    method: str = "iterative",
    backend: str = "native",
    tol: float = 1e-6,
    max_steps: int | None = None,
    memory: int | str | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> HessianResult:
    """Curvature of the loss of ``model`` on ``data`` (Hessian w.r.t. the selected parameters).

    * ``curvature``: the matrix analysed: "hessian" (default), "ggn" (generalised Gauss-Newton
      ``J^T H_out J``), "fisher" (Monte-Carlo Fisher, ``mc_samples`` labels per input drawn
      from the model, seeded) or "empirical_fisher" (uncentred gradient covariance at the true
      labels); see :mod:`inspect_kit.view.ggn` for the definitions. Every estimator below works
      on each of them.

    * ``top_k``/``which``: eigenvalues by Lanczos with full reorthogonalisation; ``which`` is
      "largest", "smallest" (most negative), "magnitude" or "both" (``top_k`` at each end).
      ``tol`` is the residual bound relative to ``max|theta|``; ``top_k=0`` skips this.
    * ``trace``: Hutch++ (default) or Hutchinson with a fixed budget of ``trace_budget``
      products and a standard error.
    * ``density``: SLQ with ``density_probes`` probes of ``density_steps`` steps; Gaussian width
      ``density_width`` (spectrum units) or ``density_width_fraction`` of the range; negative
      mass counted below ``-density_threshold`` (default ``1e-3 max|lambda|``); the
      ``density_deflate`` largest-|lambda| eigenpairs enter exactly (see :mod:`.slq`).
    * ``blocks``: "layer", "param" or ``{group: glob(s)}``: per-block eigenvalues (both ends,
      ``block_top_k`` each) and traces, beside the full spectrum.
    * ``method``: "iterative" (Lanczos, Hutch++, SLQ on Hessian-vector products) or "exact"
      (the dense Hessian by ``torch.func``, small models only: every number exact, the
      "density" is the broadened exact spectrum).
    * ``backend``: "native" (ours) or "pyhessian" (ours, with PyHessian's top eigenvalues and
      trace on the same inputs beside them under ``reference``).
    * The model view's options (:class:`inspect_kit.view.ModelView`): ``split``, ``samples``
      (a seeded random draw), ``model_mode``, ``dtype``, ``device``, ``batch_size``,
      ``include``, ``loss``. ``seed`` makes every random probe reproducible; ``vectorize``
      evaluates stacked probes in one batched backward.
    * ``memory``: byte budget (int or "8GB"; default half the available memory) for what the
      estimators store: the Lanczos basis (thick restart when the step cap would not fit), the
      Hutch++ sketch, the SLQ bases and probe blocks. A request that cannot fit is refused with
      what fits.

    The model is never modified (functional evaluation on copies of the parameters).
    Before the first product (:mod:`.budget`): ``top_k`` above the number of parameters is an
    :class:`~inspect_kit.errors.OptionError`, and products estimated (from a timed loss
    evaluation) to take longer than the kit's time limit (:data:`inspect_kit.limits.TIME_LIMIT`)
    a :class:`~inspect_kit.errors.SizeLimitError` unless ``force=True``.
    """
    if backend == "exact":  # the pre-0.2 spelling of method="exact"
        warnings.warn("hessian(backend='exact') is deprecated; use method='exact'",
                      FutureWarning, stacklevel=3)
        method, backend = "exact", "native"
    if backend not in BACKENDS:
        raise OptionError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    if which not in WHICH:
        raise OptionError(f"which must be one of {WHICH}, got {which!r}")
    if trace_method not in TRACE_METHODS:
        raise OptionError(f"trace_method must be one of {TRACE_METHODS}, got {trace_method!r}")
    if int(top_k) < 0:
        raise OptionError(f"top_k must be >= 0, got {top_k!r}")
    if curvature not in CURVATURES:
        raise OptionError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    if trace and int(trace_budget) < (3 if trace_method == "hutch++" else 2):
        raise OptionError(f"trace_budget must be >= 3 (hutch++) or >= 2 (hutchinson), got "
                          f"{trace_budget!r}")
    if density and (int(density_probes) < 1 or int(density_steps) < 1):
        raise OptionError(f"density_probes and density_steps must be >= 1, got "
                          f"{density_probes!r}, {density_steps!r}")
    view = make_view(model, data, loss=loss, include=include, model_mode=model_mode,
                     dtype=torch.float64 if method == "exact" and dtype is None else dtype,
                     device=device, batch_size=batch_size, split=split, samples=samples,
                     seed=seed)
    t_loss = time.perf_counter()
    view.check_loss_finite(view.loss(), "at the model's parameters")
    t_loss = time.perf_counter() - t_loss
    if int(top_k) > view.n:
        raise OptionError(f"top_k={top_k} is more than the {view.n} parameters of the Hessian; "
                          f"use top_k <= {view.n}")
    if method == "exact":
        return _exact(view, curvature, mc_samples, top_k=top_k, which=which, trace=trace,
                      density=density,
                      density_width=density_width,
                      density_width_fraction=density_width_fraction,
                      density_threshold=density_threshold, blocks=blocks, backend=backend,
                      seed=seed)
    op = HessianOperator(view=view, curvature=curvature, mc_samples=mc_samples, seed=seed,
                         vectorize=vectorize)
    budget.check(op.n, top_k=int(top_k), seconds_per_loss=t_loss,
                 retime=lambda: _time(view.loss), force=force, max_steps=max_steps,
                 itemsize=op.dtype.itemsize, memory=memory,
                 trace_budget=int(trace_budget) if trace else 0, trace_method=trace_method,
                 density_probes=int(density_probes) if density else None,
                 density_steps=int(density_steps), density_deflate=int(density_deflate),
                 block_sizes=_block_sizes(op, blocks), block_top_k=int(block_top_k))
    eig_vals, eig_res, eig_conv, vectors, steps = np.zeros(0), np.zeros(0), [], None, 0
    if top_k > 0:
        eig = lanczos_eigs(op, int(top_k), which=which, tol=tol, max_steps=max_steps, seed=seed,
                           return_vectors=return_vectors, memory=memory, progress=progress)
        eig_vals, eig_res, steps = eig.eigenvalues, eig.residuals, eig.steps
        eig_conv = [bool(c) for c in eig.converged]
        if eig.vectors is not None:
            vectors = eig.vectors.detach().cpu().numpy()
    tr_val = tr_err = tr_method = None
    if trace:
        fn = hutchpp_trace if trace_method == "hutch++" else hutchinson_trace
        est = fn(op, int(trace_budget), seed=seed + 1, memory=memory, progress=progress)
        tr_val, tr_err, tr_method = est.trace, est.stderr, est.method
    dens = None
    if density:
        d = slq_density(op, n_probes=density_probes, steps=density_steps, width=density_width,
                        width_fraction=density_width_fraction, threshold=density_threshold,
                        deflate=density_deflate, seed=seed + 2, memory=memory,
                        progress=progress)
        dens = _density_dict(d)
    blk = None
    if blocks is not None:
        blk = block_spectra(op, blocks, top_k=block_top_k, trace_budget=trace_budget if trace
                            else 0, trace_method=trace_method, tol=tol, max_steps=max_steps,
                            seed=seed + 3, memory=memory, progress=progress)
    reference = _reference(backend, view, op.names, top_k, trace, seed)
    return HessianResult(
        eigenvalues=np.asarray(eig_vals, dtype=float), residuals=np.asarray(eig_res, dtype=float),
        converged=eig_conv, which=which, trace=tr_val, trace_stderr=tr_err,
        trace_method=tr_method, density=dens, blocks=blk, hvp_count=op.total_hvp_count,
        n_params=op.n, n_samples=op.n_samples, param_names=list(op.names),
        skipped=list(op.skipped), model_mode=model_mode, curvature=curvature,
        dtype=str(op.dtype).replace("torch.", ""), method=method, backend=backend,
        lanczos_steps=int(steps), reference=reference, eigenvectors=vectors,
        provenance={"view": view.options},
    )


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _block_sizes(op: HessianOperator, blocks: Any) -> list[int]:
    if blocks is None:
        return []
    at = op.slices()
    return [sum(at[n].stop - at[n].start for n in names)
            for names in group_parameters(op.names, blocks).values()]


def _reference(backend: str, view: Any, names: list[str], top_k: int, trace: bool,
               seed: int) -> dict[str, Any] | None:
    """PyHessian's numbers on the view's batches, model mode, dtype and loss (or None)."""
    if backend != "pyhessian":
        return None
    from .pyhessian_backend import run_pyhessian

    t0 = time.perf_counter()
    batches = [(b.x, b.target) for b in view.batches]
    reference = run_pyhessian(view.model, batches, loss_fn=view.loss_fn, names=names,
                              top_k=top_k, trace=trace, mode=view.model_mode, dtype=view.dtype,
                              seed=seed)
    reference["seconds"] = time.perf_counter() - t0
    return reference


def _exact(view: Any, curvature: str, mc_samples: int, *, top_k: int, which: str, trace: bool,
           density: bool, density_width: float | None, density_width_fraction: float,
           density_threshold: float | None, blocks: Any, backend: str,
           seed: int) -> HessianResult:
    from .exact import DenseHessian, dense_hessian

    if curvature == "hessian":
        dense = dense_hessian(view.model, None, view=view)
    else:  # small models: the dense matrix column by column from exact products
        op = HessianOperator(view=view, curvature=curvature, mc_samples=mc_samples, seed=seed)
        dense = DenseHessian(op.to_dense().cpu(), list(op.names), dict(op.shapes))
    lam, U = torch.linalg.eigh(dense.matrix)
    lam_np = lam.numpy()
    idx = _select(lam_np, min(int(top_k), len(lam_np)), which) \
        if top_k > 0 else np.zeros(0, dtype=int)
    idx = idx[np.argsort(-lam_np[idx], kind="stable")]
    dens = None
    if density:
        w = np.full(len(lam_np), 1.0 / len(lam_np))
        grid, values, sigma = broaden(lam_np, w, width=density_width,
                                      width_fraction=density_width_fraction)
        radius = float(np.abs(lam_np).max())
        thr = float(density_threshold) if density_threshold is not None else 1e-3 * radius
        lg, lp, ln = log_view(lam_np, w, max(thr, 1e-12))
        dens = {"nodes": lam_np[None, :], "weights": np.ones((1, len(lam_np))), "grid": grid,
                "values": values, "width": sigma, "threshold": thr,
                "negative_mass": float(w[lam_np < -thr].sum()),
                "positive_mass": float(w[lam_np > thr].sum()), "log_grid": lg,
                "log_values_positive": lp, "log_values_negative": ln, "log_width": 0.1,
                "trace": float(lam_np.sum()), "trace_stderr": 0.0, "products": 0}
    blk = None
    if blocks is not None:
        blk = []
        for group, names in group_parameters(dense.names, blocks).items():
            ev = torch.linalg.eigvalsh(dense.block(names)).numpy()
            blk.append({"name": group, "params": names, "n": len(ev),
                        "eigenvalues": ev[::-1].copy(), "residuals": np.zeros(len(ev)),
                        "converged": [True] * len(ev), "trace": float(ev.sum()),
                        "trace_stderr": 0.0, "trace_method": "exact", "hvp_count": 0})
    reference = _reference(backend, view, dense.names, top_k, trace, seed)
    return HessianResult(
        eigenvalues=lam_np[idx].copy(), residuals=np.zeros(len(idx)),
        converged=[True] * len(idx), which=which,
        trace=float(lam_np.sum()) if trace else None, trace_stderr=0.0 if trace else None,
        trace_method="exact" if trace else None, density=dens, blocks=blk, hvp_count=0,
        n_params=len(lam_np), n_samples=view.n_samples, param_names=dense.names, skipped=[],
        model_mode=view.model_mode, curvature=curvature,
        dtype=str(view.dtype).replace("torch.", ""), method="exact", backend=backend,
        lanczos_steps=0, reference=reference,
        eigenvectors=U[:, idx].T.numpy() if top_k > 0 else None,
        provenance={"view": view.options},
    )
