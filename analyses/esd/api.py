"""``esd(model_or_state_dict_or_path, ...) -> ESDResult``: heavy-tailed ESD metrics per matrix.

Heavy-Tailed Self-Regularisation (Martin & Mahoney 2021, JMLR 22:165): the eigenvalues of
``W^T W`` of a trained layer follow a power law ``p(lambda) ~ lambda^-alpha`` in their tail, and
smaller alpha (2-6) signals better-trained layers. Every >= 2-D parameter gets a row
(``analyses.esd.matrices``), its ESD (``analyses.esd.spectra``), a power-law fit
(``analyses.esd.powerlaw``) and the metrics of ``analyses.esd.metrics``.

>>> import torch
>>> from torch import nn
>>> res = esd(nn.Linear(64, 32), progress=False)  # a model or a state dict
>>> res.layers[0]["name"], res.layers[0]["status"]
('weight', 'success')
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.errors import OptionError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point

from . import metrics as M
from . import powerlaw as PL
from . import spectra
from .matrices import LayerMatrix, layer_matrices
from .result import ROW_KEYS, ESDResult, summarise

METHODS = ("fast", "compat")
BACKENDS = ("native", "weightwatcher")
FAST_REL_FLOOR = 1e-12


@contextlib.contextmanager
def pinned_threads(n: int | None) -> Iterator[None]:
    """Limit torch and BLAS/OpenMP threads to ``n`` inside the block (no-op for None)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(old)


def _all_finite(t: torch.Tensor) -> bool:
    """No NaN or inf in ``t``: a finite sum proves it (one pass, no mask); else check elementwise."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _blank_row(lm: LayerMatrix) -> dict[str, Any]:
    row: dict[str, Any] = {k: math.nan for k in ROW_KEYS}
    row.update(
        name=lm.name, param=lm.param, kind=lm.kind, shape=list(lm.shape),
        N=lm.n_rows, M=lm.n_cols, rf=len(lm.mats), n_evals=lm.n_evals, status="skipped",
        skip_reason=lm.skip_reason, flag=None, warning="", alpha_ci=[math.nan, math.nan],
        num_tail=0, num_spikes=-1, detx_num=0, duplicate_of=lm.duplicate_of, ww_type=lm.ww_type,
        partial=lm.partial, small_n=False,
    )
    return row


def spectrum(lm: LayerMatrix, mode: str, *, max_evals: int, partial_k: int,
             seed: int, workspace: dict | None = None) -> np.ndarray:
    """The ESD of one layer matrix in ``mode`` (see :mod:`analyses.esd.spectra`)."""
    if len(lm.mats) == 1 and lm.n_cols > max_evals:
        lm.partial = True
        return spectra.topk_evals(lm.mats, partial_k, seed=seed)
    if mode == "fast":
        return spectra.gram_evals(lm.mats, workspace)
    # WeightWatcher's conv2d_norm: each pooled Conv2d slice is scaled by sqrt(1/2) (ESD x 0.5)
    conv2d = lm.ww_type == "conv2d" and lm.kind == "conv2d"
    return spectra.svd_evals(lm.mats, scale=float(np.sqrt(0.5)) if conv2d else None)


def analyse_matrix(lm: LayerMatrix, *, mode: str = "fast", min_evals: int = 8,
                   max_evals: int = 15000, partial_k: int = 500, mp_fit: bool = True,
                   randomize: bool = False, detx: bool = True, n_boot: int = 200,
                   level: float = 0.9, seed: int = 0, workspace: dict | None = None,
                   ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Metrics of one :class:`LayerMatrix` -> ``(row, eigenvalues or None)``.

    ``workspace``: buffers reused across calls (see :func:`analyses.esd.spectra.gram_evals`).
    """
    row = _blank_row(lm)
    if lm.skip_reason:
        return row, None
    if not all(_all_finite(m) for m in lm.mats):
        row["skip_reason"] = "non-finite values (NaN or inf) in the tensor; fix the weights"
        return row, None
    if lm.n_evals < min_evals:
        row["skip_reason"] = (f"only {lm.n_evals} eigenvalues (< min_evals={min_evals}); too few "
                              "for a power-law fit")
        return row, None
    ev = spectrum(lm, mode, max_evals=max_evals, partial_k=partial_k, seed=seed,
                  workspace=workspace)
    if not len(ev) or float(ev.max()) == 0.0:
        row["skip_reason"] = "all-zero tensor: empty spectrum"
        return row, None
    row["partial"] = lm.partial
    # fast mode: Gram eigenvalues of a rank-deficient matrix carry noise ~ eps * lambda_max
    # instead of ~0, so eigenvalues under 1e-12 lambda_max are not fitted there
    thresh = PL.EVALS_THRESH if mode == "compat" else max(PL.EVALS_THRESH,
                                                          FAST_REL_FLOOR * float(ev.max()))
    fit = PL.fit_power_law(ev, exact=(mode == "compat"), thresh=thresh)
    row.update(alpha_raw=fit.alpha, alpha=fit.alpha, xmin=fit.xmin, xmax=fit.xmax, D=fit.D,
               sigma=fit.sigma, num_tail=fit.n_tail, small_n=fit.small_n,
               status="success" if fit.status == "success" else "failed")
    flag = PL.degeneracy(ev, fit, thresh=thresh)
    warnings: list[str] = []
    if flag:
        row["flag"] = flag
        row["alpha"] = math.nan
    elif fit.status == "success":
        row["alpha_ci"] = list(PL.bootstrap_ci(ev, fit, n_boot=n_boot, level=level, seed=seed))
        if fit.alpha < 2:
            warnings.append("over-trained")
        elif fit.alpha > 6:
            warnings.append("under-trained")
        if fit.n_tail < 10 and not fit.small_n:
            warnings.append(f"tail of {fit.n_tail} points")
    row.update(M.norm_metrics(ev, row["alpha"]))
    if mp_fit or randomize:
        mp = M.mp_fit(ev, lm.n_rows, lm.n_cols)
        row.update(mp_softrank=mp["mp_softrank"], num_spikes=mp["num_spikes"],
                   sigma_mp=mp["sigma_mp"], bulk_max=mp["bulk_max"])
        if flag is None and mp["num_spikes"] == 0:
            warnings.append("MP-like (no spike above the bulk edge)")
    row["warning"] = "; ".join(warnings)
    if randomize:
        rng = np.random.default_rng(seed)
        reps = 5 if lm.n_evals < 100 else 1
        rand = [spectrum(LayerMatrix(lm.name, lm.param, lm.kind, lm.shape,
                                     spectra.shuffled(lm.mats, rng), ww_type=lm.ww_type),
                         mode, max_evals=max_evals, partial_k=partial_k, seed=seed,
                         workspace=workspace)
                for _ in range(reps)]
        rall = np.sort(np.concatenate(rand))
        rmp = M.mp_fit(rall, lm.n_rows, lm.n_cols)
        row.update(rand_num_spikes=rmp["num_spikes"], rand_mp_softrank=rmp["mp_softrank"],
                   rand_bulk_max=rmp["bulk_max"], max_rand_eval=float(rall.max()),
                   ww_softrank=float(rall.max() / ev.max()),
                   rand_distance=M.js_distance(ev, rand[0]) if len(rand[0]) == len(ev)
                   else math.nan)
    if detx:
        row.update(M.detx(ev, fit.n_tail if fit.status == "success" else None))
    return row, ev


def _resolve(model: Any) -> tuple[nn.Module | Mapping[str, torch.Tensor], str]:
    if isinstance(model, nn.Module):
        return model, type(model).__name__
    if isinstance(model, Mapping):
        return model, "state_dict"
    if isinstance(model, (str, os.PathLike)):
        raise OptionError(
            f"esd takes a model or a state dict, not a file path ({str(model)!r}); read the file "
            "with inspect_kit.checkpoints.load_checkpoint(path).state_dict (or load_model)")
    raise OptionError(f"esd needs an nn.Module or a state dict; got {type(model).__name__}")


def _select(rows: list[LayerMatrix], layers: Sequence[str] | None) -> list[LayerMatrix]:
    """Rows named (or whose parameter is named) exactly as a selector; else containing it."""
    if not layers:
        return rows
    keep = []
    for r in rows:
        for s in layers:
            exact = any(x.name == s or x.param == s for x in rows)
            if (r.name == s or r.param == s) if exact else (s in r.name):
                keep.append(r)
                break
    if not keep:
        raise OptionError(f"layers={list(layers)} matched no row; rows: "
                          f"{', '.join(r.name for r in rows[:20])}")
    return keep


@entry_point("esd", renamed={"mode": "method", "source": "model"}, tools=("weightwatcher",))
def esd(
    model: nn.Module | Mapping[str, torch.Tensor],
    *,
    method: str = "fast",
    backend: str = "native",
    layers: Sequence[str] | None = None,
    min_evals: int = 8,
    max_evals: int = 15000,
    partial_k: int = 500,
    mp_fit: bool = True,
    randomize: bool = False,
    detx: bool = True,
    n_boot: int = 200,
    level: float = 0.9,
    conv: str = "pooled",
    dedupe: bool = True,
    keep_evals: bool = True,
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
) -> ESDResult:
    """ESD metrics for every >= 2-D parameter of a model or a state dict (no data needed).

    ``method="fast"``: float64 Gram eigenvalues (BLAS syrk + LAPACK syevr).
    ``method="compat"``: WeightWatcher 0.7.7's float64 SVD, conv2d scaling and fit arithmetic
    (alpha to ~1e-14). ``backend="weightwatcher"``: our rows, with WeightWatcher run on the same
    weights beside them (``reference``: its rows and a side-by-side ``comparison``).
    ``min_evals``/``max_evals``: rows with fewer eigenvalues are skipped (with a reason); a
    matrix whose smaller side exceeds ``max_evals`` gets its top ``partial_k`` eigenvalues only.
    ``mp_fit``: MP bulk fit (``mp_softrank``, ``num_spikes``); ``randomize``: ESD of the
    element-shuffled matrix (``rand_*`` columns, seeded); ``detx``: SETOL detX/ERG columns;
    ``n_boot``/``level``: fixed-xmin bootstrap CI of alpha; ``conv``: ``"pooled"`` per-tap
    slices (default), ``"flat"`` ``(out, in*k)`` or ``"both"``; ``threads``: pin torch/BLAS
    threads. Checkpoint files are read by :mod:`inspect_kit.checkpoints`, not here. The model is
    never modified.
    """
    if method not in METHODS:
        raise OptionError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise OptionError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not 0 < level < 1:
        raise OptionError(f"level must be in (0, 1), got {level}")
    src, label = _resolve(model)
    with pinned_threads(threads), torch.no_grad():
        mats = _select(layer_matrices(src, conv=conv, dedupe=dedupe), layers)
        rows: list[dict[str, Any]] = []
        evals: dict[str, list[float]] = {}
        done: dict[str, dict[str, Any]] = {}
        workspace: dict = {}
        with bar(total=len(mats), desc="esd", progress=progress) as pb:
            for i, lm in enumerate(mats):
                if lm.duplicate_of and lm.duplicate_of in done:
                    r = dict(done[lm.duplicate_of])
                    r.update(name=lm.name, param=lm.param, kind=lm.kind, ww_type=lm.ww_type,
                             duplicate_of=lm.duplicate_of)  # the spectrum is shared, not the module
                    rows.append(r)
                    pb.update(1)
                    continue
                r, ev = analyse_matrix(lm, mode=method, min_evals=min_evals,
                                       max_evals=max_evals, partial_k=partial_k, mp_fit=mp_fit,
                                       randomize=randomize, detx=detx, n_boot=n_boot,
                                       level=level, seed=seed + i, workspace=workspace)
                r["duplicate_of"] = None
                done[lm.name] = r
                rows.append(r)
                if keep_evals and ev is not None:
                    evals[lm.name] = ev.tolist()
                pb.update(1)
        reference = None
        if backend == "weightwatcher":
            from .ww_backend import weightwatcher_reference

            reference = weightwatcher_reference(src, rows, mp_fit=mp_fit, randomize=randomize,
                                                detx=detx, min_evals=min_evals,
                                                max_evals=max_evals, layers=layers)
    return ESDResult(layers=rows, method=method, backend=backend, summary=summarise(rows),
                     eigenvalues=evals, reference=reference, source=label)
