"""PyHessian (Yao, Gholami, Keutzer & Mahoney 2020, "PyHessian: Neural Networks Through the
Lens of the Hessian") run on the same model, data and loss, for a side-by-side comparison.

What it computes: the top eigenvalues by power iteration with deflation
(``eigenvalues(top_n, maxIter=100, tol=1e-3)``, returned in discovery order, the largest |lambda|
rather than the largest lambda) and the trace by Hutchinson with Rademacher probes, stopped when
the running mean changes by < ``tol`` (``trace(maxIter=100, tol=1e-3)``).

What it cannot do (PyPI 0.1, the installed release):

* ``density()`` calls ``torch.eig``, removed in torch >= 1.9/2: it raises on current torch;
* no smallest (most negative) eigenvalue, no residuals or convergence flags, no standard error;
* no per-layer blocks, no seed argument (we seed the global RNG inside ``fork_rng``), no
  float64 switch (we cast a copy), no ``mode``: it calls ``model.eval()`` and never restores it,
  and ``loss.backward(create_graph=True)`` fills ``.grad`` with graph-carrying tensors;
* a parameter the loss does not use crashes it (``AssertionError``).

So it is always run on a ``copy.deepcopy`` of the model (with ``.grad`` cleared); the caller's
model is untouched. Its Hessian-vector products are counted by wrapping the module-level
``hessian_vector_product`` for the duration of the call (restored afterwards).
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import LossFn

CANNOT = [
    "density(): torch.eig was removed from torch; PyPI pyhessian 0.1 raises",
    "no smallest / most negative eigenvalue (power iteration returns the largest |lambda|)",
    "no residuals, convergence flags or trace standard error",
    "no per-layer blocks, no seed argument, eval mode only",
]


def run_pyhessian(model: nn.Module, data: Any, *, loss_fn: LossFn, names: list[str],
                  top_k: int = 5, trace: bool = True, mode: str | None = "eval",
                  dtype: torch.dtype = torch.float32, seed: int = 0, max_iter: int = 100,
                  tol: float = 1e-3) -> dict[str, Any]:
    """PyHessian's top-``k`` eigenvalues and trace on a copy of ``model`` (see module doc)."""
    import importlib

    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class)

    out: dict[str, Any] = {"tool": "pyhessian 0.1", "cannot": list(CANNOT), "max_iter": max_iter,
                           "tol": tol}
    if mode == "train":
        warnings.warn("PyHessian always uses eval mode; its numbers are for mode='eval'",
                      stacklevel=3)
        out["note"] = "PyHessian forces eval mode; the native numbers used train mode"
    twin = copy.deepcopy(model).to(dtype)
    keep = set(names)
    for n, p in twin.named_parameters():
        p.grad = None
        p.requires_grad_(n in keep)
    batches = list(data)  # (x, y) pairs
    batches = [(x.to(dtype) if x.is_floating_point() else x,
                y.to(dtype) if y.is_floating_point() else y) for x, y in batches]
    counter = {"n": 0}
    original = ph.hessian_vector_product

    def counted(gradsH, params, v):  # noqa: N803 (PyHessian's names)
        counter["n"] += 1
        return original(gradsH, params, v)

    ph.hessian_vector_product = counted
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*create_graph=True.*")
            torch.manual_seed(int(seed))
            try:
                if len(batches) == 1:
                    hc = ph.hessian(twin, loss_fn, data=batches[0], cuda=False)
                else:
                    hc = ph.hessian(twin, loss_fn, dataloader=batches, cuda=False)
                    base = hc.dataloader_hv_product

                    def counted_loader(v):
                        counter["n"] += 1
                        return base(v)

                    hc.dataloader_hv_product = counted_loader
                if top_k > 0:
                    t0 = time.perf_counter()
                    vals, _ = hc.eigenvalues(top_n=int(top_k), maxIter=max_iter, tol=tol)
                    out["eigenvalues_as_returned"] = [float(v) for v in vals]
                    out["eigenvalues"] = sorted((float(v) for v in vals), reverse=True)
                    out["eigen_hvp_count"] = counter["n"]
                    out["eigen_seconds"] = time.perf_counter() - t0
                if trace:
                    before = counter["n"]
                    t0 = time.perf_counter()
                    samples = hc.trace(maxIter=max_iter, tol=tol)
                    out["trace"] = float(np.mean(samples))
                    out["trace_samples"] = len(samples)
                    out["trace_hvp_count"] = counter["n"] - before
                    out["trace_seconds"] = time.perf_counter() - t0
            except Exception as exc:  # PyHessian's own failures are reported, not raised
                out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        ph.hessian_vector_product = original
    out["hvp_count"] = counter["n"]
    return out
