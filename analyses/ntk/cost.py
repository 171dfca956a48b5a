"""Cost and memory model of the NTK methods, and the automatic choice between them.

Novak et al. 2022 ("Fast Finite Width Neural Tangent Kernel", ICML, Table 1) give the costs of
the empirical NTK of ``N`` samples, ``O`` outputs and ``P`` parameters, with ``[FP]`` the cost of
a forward pass on one sample:

    Jacobian contraction     time  N O [FP] + N^2 O^2 P      memory  N O P + N^2 O^2
    NTK-vector products      time  N O [FP] + N^2 O [FP]     memory  c O P + N^2 O^2

for the full kernel; the trace over outputs (and the per-output diagonal) divides the
contraction's second term by ``O`` and leaves the products' unchanged. Both methods here work on
symmetric blocks ``rows <= cols``, which halves the ``N^2`` terms. ``[FP]`` is measured, not
guessed: :func:`profile` runs the model on one sample under
``torch.utils.flop_counter.FlopCounterMode`` (matmul, convolution and attention FLOPs; at least
``2 P``) and counts the floats its operations produce (the activation size, for workspace).

Time is predicted from measured constants (:data:`RATES`, one CPU core): FLOPs over a rate per
kind of work (BLAS GEMM, ``vmap``-ed single-sample backward passes, ``vmap``-ed forward-mode
passes), plus the elementwise work the FLOP counter does not see (seconds per activation float
per transformed pass, which makes attention and normalisation layers cost what they do), the
writing of the Jacobian, and a fixed overhead per call. The common first step (the Jacobian rows
of every sample, computed once by both methods) does not affect the choice; the second step
does: ``2 N^2 O^2 P / 2`` GEMM FLOPs against ``N^2 O / 2`` forward-mode passes.
``method="auto"`` takes the fastest method whose memory estimate fits the budget. Memory sets
the sizes of the steps: ``chunk`` samples per Jacobian (or tangent) step and ``block`` samples
per GEMM (or ``jvp``) block, the largest that fit; a method is feasible when one sample per
step fits. benchmarks/bench_ntk.py prints predicted against measured times.

>>> c = estimate(n=100, o=10, p=10_000, fp=20_000.0, act=300.0, form="full", itemsize=4,
...              budget=2**31)
>>> c["ntvp"]["flops"] < c["contraction"]["flops"], choose(c)
(True, 'ntvp')
>>> choose(estimate(n=100, o=1, p=10_000, fp=20_000.0, act=300.0, form="full", itemsize=4,
...                 budget=2**31))
'contraction'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from inspect_kit.errors import SizeLimitError
from inspect_kit.view.jacobian import autodiff_attention

from . import forms
from .chunks import merged

METHODS = ("auto", "contraction", "ntvp")

#: measured on one CPU core, float32 (benchmarks/bench_ntk.py --calibrate, results_ntk.md):
#: FLOP rates of BLAS GEMM, of vmap-ed single-sample backward passes and of vmap-ed forward-mode
#: passes; seconds per activation float touched by a transformed pass (elementwise work the
#: FLOP counter does not see), per Jacobian entry written, per call into torch.func and per
#: GEMM call
RATES = {"gemm": 9.0e10, "backward": 3.3e10, "jvp": 4.5e10, "activation": 3.7e-9,
         "write": 4.5e-9, "call": 1.0e-3, "gemm_call": 2.0e-5}


@dataclasses.dataclass(frozen=True)
class Profile:
    """One sample's forward pass: FLOPs (>= 2 P) and floats produced (activations)."""

    flops: float
    activations: float
    params: int
    outputs: int


def profile(view: Any, outputs: int) -> Profile:
    """Measure ``[FP]`` and the activation size on the view's first sample."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import FlopCounterMode

    class Floats(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if not getattr(func, "is_view", False):
                Floats.total += sum(t.numel() for t in tree_leaves(out)
                                    if isinstance(t, torch.Tensor))
            return out

    one = merged(view).take(torch.tensor([0]))
    Floats.total = 0
    with torch.no_grad(), autodiff_attention(), FlopCounterMode(display=False) as counter, \
            Floats():
        view.call(view.full_state(), one)
    return Profile(max(float(counter.get_total_flops()), 2.0 * view.n),
                   float(max(Floats.total, 1)), int(view.n), int(outputs))


def _pairs(n: int, c: int) -> float:
    """Sample pairs in the blocks ``rows <= cols`` of chunks of ``c``."""
    m = math.ceil(n / c)
    return n * n / 2 + n * c / 2 if m > 1 else float(n * n)


def kernel_bytes(form: str, n: int, o: int, itemsize: int) -> int:
    """The kernel plus a float64 copy and workspace for the dense eigenvalues."""
    return forms.entries(form, n, o) * (itemsize + 16)


def _largest_chunk(n: int, fits: Any) -> int:
    c = n
    while c > 1 and not fits(c):
        c = max(1, c // 2)
    return c


def estimate(*, n: int, o: int, p: int, fp: float, act: float, form: str, itemsize: int,
             budget: int) -> dict[str, dict[str, Any]]:
    """Predicted FLOPs, seconds and bytes of each method, with its sizes: ``chunk`` (samples
    per Jacobian / tangent step) and ``block`` (samples per GEMM / jvp block)."""
    kb = kernel_bytes(form, n, o, itemsize)
    rest = budget - kb
    jac_flops = n * o * 3.0 * fp  # one forward and two per backward, per output row
    jac_seconds = n * o * (3.0 * fp / RATES["backward"] + p * RATES["write"]
                           + 2.0 * act * RATES["activation"])
    out: dict[str, dict[str, Any]] = {}

    def jac_ws(c: int) -> float:  # vmap-ed jacrev over c samples
        return 3.0 * c * o * (p + act) * itemsize

    # Jacobian contraction: all of J, a chunk's Jacobian, then GEMM blocks of g x g samples
    full_j = n * o * p * itemsize

    def gemm_tmp(g: int) -> float:
        return {"full": 2.0 * o * o, "trace": 1.0, "per_output": 2.0 * o}[form] * g * g * itemsize

    c_con = _largest_chunk(n, lambda c: full_j + jac_ws(c) <= rest)
    g_con = _largest_chunk(n, lambda g: full_j + gemm_tmp(g) <= rest)
    gemm = 2.0 * _pairs(n, g_con) * o * (o * p if form == "full" else p)
    m = math.ceil(n / g_con)
    out["contraction"] = {
        "flops": jac_flops + gemm, "chunk": c_con, "block": g_con,
        "seconds": jac_seconds + gemm / RATES["gemm"]
        + math.ceil(n / c_con) * RATES["call"] + m * (m + 1) / 2 * RATES["gemm_call"],
        "bytes": int(kb + full_j + max(jac_ws(c_con), gemm_tmp(g_con))),
        "min_bytes": int(kb + full_j + max(jac_ws(1), gemm_tmp(1)))}

    # NTK-vector products: tangents of a chunk of c samples, jvp through blocks of g samples
    def tangents(c: int) -> float:
        return c * o * p * itemsize + jac_ws(c)

    def jvp_ws(c: int, g: int) -> float:
        return 3.0 * c * o * g * (act + o) * itemsize

    c_nt = _largest_chunk(n, lambda c: tangents(c) + jvp_ws(c, 1) <= rest / 2)
    g_nt = _largest_chunk(n, lambda g: c_nt * o * p * itemsize + jvp_ws(c_nt, g) <= rest)
    units = _pairs(n, c_nt) * o  # (sample pair, tangent) units of forward-mode work
    jvp_calls = sum(math.ceil(min(j + c_nt, n) / g_nt) for j in range(0, n, c_nt))
    out["ntvp"] = {
        "flops": jac_flops + units * 2.0 * fp, "chunk": c_nt, "block": g_nt,
        "seconds": jac_seconds + units * (2.0 * fp / RATES["jvp"] + act * RATES["activation"])
        + (math.ceil(n / c_nt) + jvp_calls) * RATES["call"],
        "bytes": int(kb + max(tangents(c_nt), c_nt * o * p * itemsize + jvp_ws(c_nt, g_nt))),
        "min_bytes": int(kb + tangents(1) + jvp_ws(1, 1))}
    for v in out.values():
        v["feasible"] = bool(v["min_bytes"] <= budget)
    return out


def choose(costs: dict[str, dict[str, Any]]) -> str:
    """The feasible method with the smallest predicted time (raises when none fits)."""
    ok = [m for m in ("contraction", "ntvp") if costs[m]["feasible"]]
    if not ok:
        raise SizeLimitError("no NTK method fits the memory budget")
    return min(ok, key=lambda m: costs[m]["seconds"])


def matrix_free_workspace(*, n: int, o: int, p: int, act: float, form: str, itemsize: int,
                          budget: int) -> tuple[int, int]:
    """Bytes of one kernel-vector product (cotangents, the ``J^T u`` vectors and a chunk's
    vjp/jvp activations) with the largest chunk whose workspace fits half the budget (the other
    half is the Lanczos basis's); returns (bytes, chunk size)."""
    k = o if form == "trace" else 1  # products per kernel-vector product

    def ws(c: int) -> float:
        return 3.0 * k * (p + n * o) * itemsize + 3.0 * k * c * (act + o) * itemsize

    c = _largest_chunk(n, lambda c: ws(c) <= budget / 2)
    return int(ws(c)), c
