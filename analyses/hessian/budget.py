"""How many products a ``hessian(...)`` request makes, checked before the first one.

Every estimator's cost is known from its options before it runs (they are fixed-budget
methods), for ``n`` parameters:

* Lanczos (:mod:`.lanczos`): at most ``min(n, max_steps or max(300, 20 k))`` products (it may
  stop earlier, once converged);
* Hutch++ (:mod:`.hutchpp`) and Hutchinson: ``m`` products (``n`` when ``n <= m``: the exact
  trace);
* SLQ (:mod:`.slq`): ``p x min(t, n)`` products after a deflation Lanczos of ``min(n, 5 d)``;
* blocks (:mod:`.blocks`): the above per block.

:func:`check` refuses ``top_k > n``, a request whose products would take longer than the
kit's time limit at the measured cost of one loss evaluation (``force=True`` lifts it), and
probe matrices that do not fit the ``memory=`` budget: the estimators bound their Krylov bases
and product blocks by that budget themselves, but draw every probe at once (``p x n`` for SLQ,
``m x n`` for Hutchinson/Hutch++ with their int64 draws, the ``n x n`` identity of the exact
trace).

>>> products(1000, top_k=5, max_steps=None, trace_budget=100, trace_method="hutch++",
...          density_probes=None, density_steps=0, density_deflate=0, block_sizes=[])
400
"""

from __future__ import annotations

from collections.abc import Callable

from inspect_kit import limits
from inspect_kit.errors import OptionError, SizeLimitError
from inspect_kit.memory import budget as mem_budget
from inspect_kit.memory import human

#: one Hessian-vector product is charged this many loss evaluations (forward + double backward)
HVP_PER_LOSS = 2.0


def _lanczos(n: int, k: int, max_steps: int | None) -> int:
    return min(n, max_steps if max_steps is not None else max(300, 20 * k))


def _trace(n: int, budget: int, method: str) -> int:
    return n if method == "hutch++" and n <= budget else budget


def products(n: int, *, top_k: int, max_steps: int | None, trace_budget: int,
             trace_method: str, density_probes: int | None, density_steps: int,
             density_deflate: int, block_sizes: list[int], block_top_k: int = 3) -> int:
    """Products of a request on ``n`` parameters (an upper bound for Lanczos, exact for the
    fixed-budget estimators); ``trace_budget=0`` or ``density_probes=None`` skip those parts."""
    total = _lanczos(n, top_k, max_steps) if top_k > 0 else 0
    if trace_budget > 0:
        total += _trace(n, trace_budget, trace_method)
    if density_probes is not None:
        if density_deflate > 0 and n > 2 * density_deflate:
            total += _lanczos(n, density_deflate, min(n, 5 * density_deflate))
        total += density_probes * min(density_steps, n)
    for nb in block_sizes:
        if block_top_k > 0:
            total += _lanczos(nb, min(block_top_k, nb), max_steps)
        if trace_budget > 0:
            total += _trace(nb, trace_budget, trace_method)
    return total


def probe_bytes(n: int, b: int, *, trace_budget: int, trace_method: str,
                density_probes: int | None) -> int:
    """The largest probe matrix drawn at once, in bytes (``b`` bytes per value).

    >>> probe_bytes(1000, 4, trace_budget=0, trace_method="hutch++", density_probes=10)
    120000
    """
    sizes = [0]
    if trace_budget > 0:
        sizes.append(n * n * b if trace_method == "hutch++" and n <= trace_budget
                     else trace_budget * n * (b + 8))
    if density_probes is not None:
        sizes.append(density_probes * n * (b + 8))
    return max(sizes)


def check(n: int, *, top_k: int, seconds_per_loss: float,
          retime: Callable[[], float] | None = None, force: bool = False,
          itemsize: int = 4, memory: int | str | None = None, **options: object) -> int:
    """Refuse what cannot run (see the module docstring); returns the number of products.

    ``seconds_per_loss`` is a measured loss evaluation; when the estimate is over the limit,
    ``retime()`` (a second, warm measurement) is asked before refusing. Under
    ``torch.distributed`` rank 0's timing decides for every rank.
    """
    if top_k > n:
        raise OptionError(f"top_k={top_k} is more than the {n} parameters of the Hessian; use "
                          f"top_k <= {n}")
    count = products(n, top_k=top_k, **options)  # type: ignore[arg-type]
    need = probe_bytes(n, itemsize, trace_budget=int(options["trace_budget"]),  # type: ignore[call-overload]
                       trace_method=str(options["trace_method"]),
                       density_probes=options["density_probes"])  # type: ignore[arg-type]
    room = limits.consistent(mem_budget(memory))
    if need > room:
        raise SizeLimitError(f"the probe vectors for {n:,} parameters need {human(need)}, over "
                             f"the memory budget ({human(room)}); lower --trace-budget or "
                             "--density-probes, or raise memory=")
    seconds_per_loss = limits.consistent(seconds_per_loss)  # one decision on every rank
    secs = count * HVP_PER_LOSS * seconds_per_loss
    if secs > limits.TIME_LIMIT and retime is not None and not force:
        seconds_per_loss = limits.consistent(min(seconds_per_loss, retime()))
        secs = count * HVP_PER_LOSS * seconds_per_loss
    limits.check_time(secs, f"{count:,} Hessian-vector products (each ~{HVP_PER_LOSS:g} loss "
                            f"evaluations of {seconds_per_loss * 1e3:.3g} ms)",
                      "lower --trace-budget, --density-probes, --density-steps or --top-k",
                      force=force)
    return count
