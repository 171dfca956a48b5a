"""What a ``hessian(...)`` request costs, checked before the first product.

Every estimator's cost is known from its options before it runs (they are fixed-budget
methods): Hessian-vector products and the vectors it stores at once, for ``n`` parameters of
``b`` bytes each:

* Lanczos (:mod:`.lanczos`): ``s = min(n, max_steps or max(300, 20 k))`` products, a basis of
  ``s x n`` values;
* Hutch++ (:mod:`.hutchpp`): ``m`` products, about ``m x n`` probe values plus ``m/3 x n`` in
  float64 for the range basis (the exact trace when ``n <= m``: ``n`` products, an ``n x n``
  identity); Hutchinson: ``m`` products, ``m x n`` probes (and their int64 draws);
* SLQ (:mod:`.slq`): ``p x min(t, n)`` products and a ``p x t x n`` basis, after a deflation
  Lanczos of ``min(n, 5 d)`` steps;
* blocks (:mod:`.blocks`): the above per block, one block at a time.

:func:`check` refuses ``top_k > n``, a request whose largest simultaneous storage exceeds the
available memory, or whose products would take longer than the kit's time limit at the
measured cost of one loss evaluation (``force=True`` lifts the time bound only).

>>> p = plan(1000, 4, top_k=5, max_steps=None, trace_budget=100, trace_method="hutch++",
...          density_probes=None, density_steps=0, density_deflate=0, block_sizes=[])
>>> p.products, p.peak_bytes, p.peak_what   # 300 Lanczos steps + 100 trace probes
(400, 1728000, 'the hutch++ trace probes')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from inspect_kit import limits
from inspect_kit.errors import OptionError
from inspect_kit.limits import check_memory, check_time

#: one Hessian-vector product is charged this many loss evaluations (forward + double backward)
HVP_PER_LOSS = 2.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """Total products, the largest storage held at once (bytes), and what dominates it."""

    products: int
    peak_bytes: int
    peak_what: str


def _lanczos(n: int, k: int, max_steps: int | None, b: int) -> tuple[int, int]:
    steps = min(n, max_steps if max_steps is not None else max(300, 20 * k))
    return steps, steps * n * b


def _trace(n: int, budget: int, method: str, b: int) -> tuple[int, int]:
    if method == "hutch++" and n <= budget:
        return n, n * n * b
    if method == "hutch++":
        return budget, budget * n * (b + 8) + (budget // 3) * n * (8 + 2 * b)
    return budget, budget * n * (b + 8)


def plan(n: int, b: int, *, top_k: int, max_steps: int | None, trace_budget: int,
         trace_method: str, density_probes: int | None, density_steps: int,
         density_deflate: int, block_sizes: list[int], block_top_k: int = 3) -> Plan:
    """The cost of a request on ``n`` parameters of ``b`` bytes (``trace_budget=0`` or
    ``density_probes=None`` skip those parts)."""
    parts: list[tuple[str, int, int]] = []
    if top_k > 0:
        parts.append(("the Lanczos basis", *_lanczos(n, top_k, max_steps, b)))
    if trace_budget > 0:
        parts.append((f"the {trace_method} trace probes", *_trace(n, trace_budget,
                                                                   trace_method, b)))
    if density_probes is not None:
        if density_deflate > 0 and n > 2 * density_deflate:
            parts.append(("the deflation basis", *_lanczos(n, density_deflate,
                                                           min(n, 5 * density_deflate), b)))
        m = min(density_steps, n)
        parts.append((f"the SLQ basis ({density_probes} probes x {m} steps)",
                      density_probes * m, density_probes * m * n * b))
    for i, nb in enumerate(block_sizes):
        if block_top_k > 0:
            parts.append((f"block {i}'s Lanczos basis", *_lanczos(nb, min(block_top_k, nb),
                                                                  max_steps, b)))
        if trace_budget > 0:
            parts.append((f"block {i}'s trace probes", *_trace(nb, trace_budget,
                                                                trace_method, b)))
    if not parts:
        return Plan(0, 0, "nothing")
    peak = max(parts, key=lambda p: p[2])
    return Plan(sum(p[1] for p in parts), peak[2], peak[0])


def check(n: int, b: int, *, top_k: int, seconds_per_loss: float,
          retime: Callable[[], float] | None = None, force: bool = False,
          **options: Any) -> Plan:
    """Refuse what cannot run (see the module docstring); returns the :class:`Plan`.

    ``seconds_per_loss`` is a measured loss evaluation; when the estimate is over the limit,
    ``retime()`` (a second, warm measurement) is asked before refusing.
    """
    if top_k > n:
        raise OptionError(f"top_k={top_k} is more than the {n} parameters of the Hessian; use "
                          f"top_k <= {n}")
    p = plan(n, b, top_k=top_k, **options)
    check_memory(p.peak_bytes, f"{p.peak_what} for {n:,} parameters",
                 "lower --trace-budget, --density-probes, --density-steps or --top-k, or select "
                 "fewer parameters with --include")
    seconds_per_loss = limits.consistent(seconds_per_loss)  # one decision on every rank
    secs = p.products * HVP_PER_LOSS * seconds_per_loss
    if secs > limits.TIME_LIMIT and retime is not None and not force:
        seconds_per_loss = limits.consistent(min(seconds_per_loss, retime()))
        secs = p.products * HVP_PER_LOSS * seconds_per_loss
    check_time(secs, f"{p.products:,} Hessian-vector products (each ~{HVP_PER_LOSS:g} loss "
                     f"evaluations of {seconds_per_loss * 1e3:.3g} ms)",
               "lower --trace-budget, --density-probes, --density-steps or --top-k", force=force)
    return p
