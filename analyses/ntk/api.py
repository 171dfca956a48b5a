"""``ntk(model, data, ...)``: the empirical neural tangent kernel of a model on samples.

``Theta(x, x') = J(x) J(x')^T`` (Jacot et al. 2018) with ``J`` the Jacobian of the outputs in
the selected parameters, in one of three forms (:mod:`.forms`), computed by Jacobian
contraction (:mod:`.contraction`) or NTK-vector products (:mod:`.products`), chosen by the cost
model of Novak et al. 2022 (:mod:`.cost`) within a memory budget; its top eigenvalues
(:mod:`.spectrum`), matrix-free by Lanczos on kernel-vector products when the kernel does not
fit (:mod:`.operator`); its change against another model on the same samples and its alignment
with the targets (:mod:`.alignment`); and the Gauss-Newton consistency check (:mod:`.ggn`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.data import LossFn
from inspect_kit.errors import OptionError, SizeLimitError
from inspect_kit.memory import budget as memory_budget
from inspect_kit.memory import human
from inspect_kit.provenance import entry_point
from inspect_kit.view import make_view

from . import cost, forms
from .alignment import kernel_change, target_alignment
from .chunks import chunks, merged, output_shape
from .contraction import kernel_by_contraction
from .products import kernel_by_products
from .result import NTKResult
from .spectrum import dense_eigenvalues, matrix_free_eigenvalues

COMPUTE = {"contraction": kernel_by_contraction, "ntvp": kernel_by_products}


def _fits(n: int, o: int, p: int, prof: cost.Profile, form: str, itemsize: int,
          budget: int) -> int:
    """The largest sample count whose kernel some method can form within ``budget``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        est = cost.estimate(n=mid, o=o, p=p, fp=prof.flops, act=prof.activations, form=form,
                            itemsize=itemsize, budget=budget)
        lo, hi = (mid, hi) if any(e["feasible"] for e in est.values()) else (lo, mid - 1)
    return lo


def _route(method: str, matrix_free: bool | None, costs: dict[str, Any], why: str) -> str:
    if matrix_free:
        return "matrix_free"
    if method == "auto":
        ok = [m for m in ("contraction", "ntvp") if costs[m]["feasible"]]
        if ok:
            return cost.choose(costs)
    elif costs[method]["feasible"]:
        return method
    if matrix_free is None and method == "auto":
        return "matrix_free"
    raise SizeLimitError(why)


def _targets(view: Any, o: int) -> tuple[torch.Tensor | None, list[int] | None]:
    y = merged(view).target
    if y is None:
        return None, None
    if view.classify:
        labels = y.reshape(-1).long()
        if int(labels.max()) >= o:
            return None, labels.tolist()
        return torch.nn.functional.one_hot(labels, o).double(), labels.tolist()
    Y = y.reshape(len(y), -1).double()
    return (Y if Y.shape[1] == o else None), None


@entry_point("ntk")
def ntk(
    model: nn.Module,
    data: Any,
    *,
    kernel: str = "trace",
    method: str = "auto",
    top_k: int = 10,
    matrix_free: bool | None = None,
    memory: int | float | str | None = None,
    compare: nn.Module | None = None,
    ggn_check: bool = False,
    loss: str | LossFn | None = None,
    include: str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None = None,
    split: str = "train",
    samples: int | None = 256,
    seed: int = 0,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    tol: float = 1e-6,
    max_steps: int | None = None,
    progress: bool | None = None,
) -> NTKResult:
    """The empirical NTK of ``model`` on ``samples`` samples of ``data`` (default a seeded draw
    of 256; None = all).

    * ``kernel``: "trace" (``N x N``, summed over outputs; default), "full"
      (``(N, N, O, O)``) or "per_output" (``(O, N, N)``); see :mod:`.forms`.
    * ``method``: "auto" (the cost model's fastest method that fits ``memory``),
      "contraction" (Jacobian contraction) or "ntvp" (NTK-vector products).
    * ``top_k``: eigenvalues of the kernel (per output for "per_output"); 0 skips them.
    * ``matrix_free``: True computes only the top eigenvalues by Lanczos on kernel-vector
      products, never forming the kernel; None (default) does so when no method can form the
      kernel within ``memory``; False refuses then, saying what fits.
    * ``memory``: bytes (or "512MB", "2GB") the kernel, the Jacobian and the workspace may use
      (default half the available memory, :mod:`inspect_kit.memory`); estimated before anything
      is allocated.
    * ``compare``: another model (e.g. the same network at initialisation); its kernel on the
      same samples gives ``change`` (relative Frobenius distance, alignment, CKA).
    * ``ggn_check``: compare the top eigenvalues of the Gauss-Newton matrix of ``loss`` with
      those of the full kernel weighted by the loss Hessian (:mod:`.ggn`; small models).
    * The model view's options: ``split``, ``samples`` (a seeded draw by ``seed``),
      ``model_mode`` ("eval" or None; "train" is refused: BatchNorm would couple the samples
      and dropout is random), ``dtype``, ``device``, ``include`` (the parameters ``theta``),
      ``loss`` (for the GGN check). ``tol``/``max_steps``: Lanczos (matrix-free).

    The model is never modified (functional evaluation on copies of the parameters).
    """
    form = forms.check_form(kernel)
    if method not in cost.METHODS:
        raise OptionError(f"method must be one of {cost.METHODS}, got {method!r}")
    if matrix_free not in (None, True, False):
        raise OptionError(f"matrix_free must be True, False or None (automatic), got "
                          f"{matrix_free!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise OptionError(f"top_k must be an integer >= 0, got {top_k!r}")
    if model_mode == "train":
        raise OptionError("model_mode='train' is not supported by ntk: the empirical NTK is a "
                          "kernel of per-sample outputs, and in train mode BatchNorm couples "
                          "the samples of a batch and dropout is random; use model_mode='eval' "
                          "(or None to leave the flags)")
    if compare is not None and not isinstance(compare, nn.Module):
        raise OptionError(f"compare must be an nn.Module (e.g. the model at initialisation), "
                          f"got {type(compare).__name__}")
    budget = memory_budget(memory)
    view_opts = dict(loss=loss, include=include, model_mode=model_mode, device=device,
                     split=split, samples=samples, seed=seed)
    view = make_view(model, data, dtype=dtype, **view_opts)
    out_shape = output_shape(view)
    o = int(np.prod(out_shape)) if out_shape else 1
    n, p = view.n_samples, view.n
    from inspect_kit.view.batches import check_finite

    check_finite(view.batches, f"data of split {split!r}")  # NaN inputs: a NaN kernel
    itemsize = torch.empty(0, dtype=view.dtype).element_size()
    prof = cost.profile(view, o)
    costs = cost.estimate(n=n, o=o, p=p, fp=prof.flops, act=prof.activations, form=form,
                          itemsize=itemsize, budget=budget)
    need = min(costs[m]["min_bytes"] for m in ("contraction", "ntvp")) if method == "auto" \
        else costs[method]["min_bytes"]
    why = (f"the {form} kernel of {n} samples x {o} outputs ({p} parameters) needs about "
           f"{human(need)} with method={method!r}, over memory={human(budget)}; "
           f"samples<={_fits(n, o, p, prof, form, itemsize, budget)} fits, or pass "
           "matrix_free=True (top eigenvalues only), kernel='trace' or a larger memory=")
    route = _route(method, matrix_free, costs, why)
    note: dict[str, Any] = {}
    K = None
    labels = None
    products = 0
    if route == "matrix_free":
        if top_k == 0:
            raise OptionError("matrix_free computes the top eigenvalues only: pass top_k >= 1")
        if compare is not None or ggn_check:
            raise SizeLimitError(f"compare and ggn_check need the formed kernel, and {why}")
        ws, chunk = cost.matrix_free_workspace(n=n, o=o, p=p, act=prof.activations, form=form,
                                               itemsize=itemsize, budget=budget)
        if ws > budget:
            raise SizeLimitError(f"even one kernel-vector product needs about {human(ws)}, over "
                                 f"memory={human(budget)}; raise memory= or restrict include=")
        if matrix_free is None:
            note["matrix_free"] = f"went matrix-free: {why}"
        eig = matrix_free_eigenvalues(view, chunks(view, chunk), form, o, top_k, tol=tol,
                                      max_steps=max_steps, seed=seed, memory=budget - ws,
                                      progress=progress)
        vals, res, eig_method, products = (eig["eigenvalues"], eig["residuals"], "lanczos",
                                           eig["products"])
        mem_bytes, trace = ws + eig["basis_bytes"], None
        labels = _targets(view, o)[1]
    else:
        K = _kernel(view, route, costs[route], form, progress)
        vals, res = (dense_eigenvalues(K, form, top_k, seed=seed) if top_k > 0
                     else (np.zeros(0), np.zeros(0)))
        eig_method, mem_bytes = "eigh", costs[route]["bytes"]
        trace = float(forms.matrices(K, form).diagonal(dim1=1, dim2=2).sum())
        Y, labels = _targets(view, o)
        if Y is not None:
            note["target_alignment"] = target_alignment(K, Y, form)
    change = ggn = None
    if K is not None and compare is not None:
        change = _change(compare, data, view, view_opts, K, form, route, budget, top_k, seed,
                         progress)
    if K is not None and ggn_check:
        from .ggn import ggn_check as check

        full = cost.estimate(n=n, o=o, p=p, fp=prof.flops, act=prof.activations, form="full",
                             itemsize=itemsize, budget=budget)[route]
        if not full["feasible"]:
            raise SizeLimitError(f"ggn_check needs the full kernel ({n} samples x {o} outputs), "
                                 f"which does not fit memory={human(budget)}; pass fewer "
                                 "samples")
        K_full = K if form == "full" else _kernel(view, route, full, "full", progress)
        ggn = check(view, K_full, max(top_k, 1), seed=seed, progress=progress)
    return NTKResult(
        form=form, method=route, method_requested=method, eigenvalues=np.asarray(vals, float),
        residuals=np.asarray(res, float), eigen_method=eig_method, trace=trace, n_samples=n,
        n_outputs=o, n_params=p, costs=costs, memory_bytes=int(mem_bytes), products=products,
        kernel=None if K is None else K.detach().cpu().numpy(), labels=labels,
        target_alignment=note.pop("target_alignment", None), change=change, ggn=ggn,
        provenance={"view": view.options, "profile": {"forward_flops": prof.flops,
                                                      "activations": prof.activations},
                    **note})


def _kernel(view: Any, route: str, plan: dict[str, Any], form: str,
            progress: bool | None) -> torch.Tensor:
    return COMPUTE[route](view, chunks(view, plan["chunk"]), form, block=plan["block"],
                          progress=progress)


def _change(compare: nn.Module, data: Any, view: Any, view_opts: dict[str, Any],
            K: torch.Tensor, form: str, route: str, budget: int, top_k: int, seed: int,
            progress: bool | None) -> dict[str, Any]:
    """The kernel of ``compare`` on the same samples and its distances to ``K``."""
    other = make_view(compare, data, dtype=view.dtype, **view_opts)
    o = K.shape[-1] if form == "full" else (K.shape[0] if form == "per_output" else None)
    o_other = int(np.prod(output_shape(other)) or 1)
    if other.n_samples != view.n_samples or (o is not None and o != o_other):
        raise OptionError(f"compare gives {other.n_samples} samples x {o_other} outputs, the "
                          f"model {view.n_samples} x {o}: both models must take the same data "
                          "and have the same outputs")
    prof = cost.profile(other, o_other)
    est = cost.estimate(n=other.n_samples, o=o_other, p=other.n, fp=prof.flops,
                        act=prof.activations, form=form,
                        itemsize=torch.empty(0, dtype=other.dtype).element_size(),
                        budget=budget)
    if not est[route]["feasible"]:
        raise SizeLimitError(f"the compare model's kernel does not fit memory={human(budget)}"
                             " by the same method; pass fewer samples")
    K_ref = _kernel(other, route, est[route], form, progress)
    out: dict[str, Any] = kernel_change(K_ref, K, form)
    if top_k > 0:
        out["compare_eigenvalues"] = dense_eigenvalues(K_ref, form, top_k, seed=seed)[0]
    out["compare_trace"] = float(forms.matrices(K_ref, form).diagonal(dim1=1, dim2=2).sum())
    return out
