"""``hessian(model, data, ...)``: eigenvalues, trace, spectral density and blocks in one call.

The estimators live one per file (:mod:`.lanczos`, :mod:`.hutchinson`, :mod:`.hutchpp`,
:mod:`.slq`, :mod:`.blocks`, :mod:`.exact`) and all consume one
:class:`~.operator.HessianOperator`; this module only wires options to them and packs a
:class:`~.result.HessianResult`.

Backends: ``"native"`` (default; Lanczos + Hutch++ + SLQ on HVPs), ``"exact"`` (dense Hessian by
``torch.func``, small models only; every number exact, the "density" is the broadened exact
spectrum) and ``"pyhessian"`` (native numbers plus PyHessian's top eigenvalues and trace on the
same inputs under ``reference``, see :mod:`.pyhessian_backend` for what PyHessian cannot do).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import Batches, LossFn
from inspect_kit.errors import OptionError

from .blocks import block_spectra, group_parameters
from .distributed import make_operator
from .hutchinson import hutchinson_trace
from .hutchpp import hutchpp_trace
from .lanczos import WHICH, _select, lanczos_eigs
from .result import HessianResult
from .slq import broaden, log_view, slq_density

BACKENDS = ("native", "exact", "pyhessian")
TRACE_METHODS = ("hutch++", "hutchinson")


def _density_dict(d: Any) -> dict[str, Any]:
    return {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}


def hessian(
    model: nn.Module,
    data: Any,
    *,
    loss: str | LossFn | None = None,
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
    mode: str | None = "eval",
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
    vectorize: bool = True,
    backend: str = "native",
    tol: float = 1e-6,
    max_steps: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
    progress: bool | None = None,
) -> HessianResult:
    """Curvature of the loss of ``model`` on ``data`` (Hessian w.r.t. the selected parameters).

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
    * ``mode``: "eval" (default), "train" or None; ``dtype``: float32 (default for float32
      models) or float64; ``seed`` makes every random probe reproducible; ``vectorize``
      evaluates stacked probes in one batched backward (see :class:`.HessianOperator`).

    The model is never modified (functional evaluation on copies of the parameters).
    """
    if backend not in BACKENDS:
        raise OptionError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if which not in WHICH:
        raise OptionError(f"which must be one of {WHICH}, got {which!r}")
    if trace_method not in TRACE_METHODS:
        raise OptionError(f"trace_method must be one of {TRACE_METHODS}, got {trace_method!r}")
    if int(top_k) < 0:
        raise OptionError(f"top_k must be >= 0, got {top_k!r}")
    if backend == "exact":
        return _exact(model, data, loss=loss, top_k=top_k, which=which, trace=trace,
                      density=density, density_width=density_width,
                      density_width_fraction=density_width_fraction,
                      density_threshold=density_threshold, blocks=blocks, include=include,
                      mode=mode, batch_size=batch_size, seed=seed)
    # one process: a HessianOperator; under torchrun: data-parallel (see .distributed)
    op = make_operator(model, data, loss=loss, include=include, mode=mode, dtype=dtype,
                       batch_size=batch_size, vectorize=vectorize)
    eig_vals, eig_res, eig_conv, vectors, steps = np.zeros(0), np.zeros(0), [], None, 0
    if top_k > 0:
        eig = lanczos_eigs(op, int(top_k), which=which, tol=tol, max_steps=max_steps, seed=seed,
                           return_vectors=return_vectors, progress=progress)
        eig_vals, eig_res, steps = eig.eigenvalues, eig.residuals, eig.steps
        eig_conv = [bool(c) for c in eig.converged]
        if eig.vectors is not None:
            vectors = eig.vectors.detach().cpu().numpy()
    tr_val = tr_err = tr_method = None
    if trace:
        fn = hutchpp_trace if trace_method == "hutch++" else hutchinson_trace
        est = fn(op, int(trace_budget), seed=seed + 1, progress=progress)
        tr_val, tr_err, tr_method = est.trace, est.stderr, est.method
    dens = None
    if density:
        d = slq_density(op, n_probes=density_probes, steps=density_steps, width=density_width,
                        width_fraction=density_width_fraction, threshold=density_threshold,
                        deflate=density_deflate, seed=seed + 2, progress=progress)
        dens = _density_dict(d)
    blk = None
    if blocks is not None:
        blk = block_spectra(op, blocks, top_k=block_top_k, trace_budget=trace_budget if trace
                            else 0, trace_method=trace_method, tol=tol, max_steps=max_steps,
                            seed=seed + 3, progress=progress)
    reference = None
    if backend == "pyhessian":
        from .pyhessian_backend import run_pyhessian

        t0 = time.perf_counter()
        reference = run_pyhessian(model, data, loss_fn=op.loss_fn, names=op.names, top_k=top_k,
                                  trace=trace, mode=mode, dtype=op.dtype, seed=seed,
                                  batch_size=batch_size)
        reference["seconds"] = time.perf_counter() - t0
    return HessianResult(
        eigenvalues=np.asarray(eig_vals, dtype=float), residuals=np.asarray(eig_res, dtype=float),
        converged=eig_conv, which=which, trace=tr_val, trace_stderr=tr_err,
        trace_method=tr_method, density=dens, blocks=blk, hvp_count=op.total_hvp_count,
        n_params=op.n, n_samples=op.n_samples, param_names=list(op.names),
        skipped=list(op.skipped), mode=mode, dtype=str(op.dtype).replace("torch.", ""),
        backend=backend, seed=int(seed), lanczos_steps=int(steps), reference=reference,
        eigenvectors=vectors,
    )


def _exact(model: nn.Module, data: Any, *, loss: Any, top_k: int, which: str, trace: bool,
           density: bool, density_width: float | None, density_width_fraction: float,
           density_threshold: float | None, blocks: Any, include: Any, mode: str | None,
           batch_size: int | None, seed: int) -> HessianResult:
    from .exact import dense_hessian

    dense = dense_hessian(model, data, loss=loss, include=include, mode=mode,
                          batch_size=batch_size)
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
    n_samples = Batches.of(data, batch_size=batch_size).n_samples
    return HessianResult(
        eigenvalues=lam_np[idx].copy(), residuals=np.zeros(len(idx)),
        converged=[True] * len(idx), which=which,
        trace=float(lam_np.sum()) if trace else None, trace_stderr=0.0 if trace else None,
        trace_method="exact" if trace else None, density=dens, blocks=blk, hvp_count=0,
        n_params=len(lam_np), n_samples=n_samples, param_names=dense.names, skipped=[],
        mode=mode, dtype="float64", backend="exact", seed=int(seed), lanczos_steps=0,
        eigenvectors=U[:, idx].T.numpy() if top_k > 0 else None,
    )
