"""Per-block Hessian spectra: the diagonal blocks ``H_BB`` of parameter groups.

For a partition of the parameters into groups ``B_1 .. B_K`` (per layer, per named tensor, or
user-given glob patterns), each block ``H_BB = d^2 L / d theta_B^2`` is a linear operator of its
own (:meth:`HessianOperator.restrict`, same graphs), analysed with the same estimators (Lanczos at
both ends, Hutch++ trace). Two facts worth showing beside the full spectrum:

* traces add up: ``tr H = sum_B tr H_BB`` (the off-diagonal blocks do not touch the trace);
* spectra do not: a ReLU network is linear in any one layer's weights, so every per-layer block
  is a Gauss-Newton term ``J^T H_loss J`` (positive semi-definite for convex losses) while the
  full Hessian is indefinite; negative curvature lives in the cross-layer blocks
  (Cauchy interlacing bounds every block eigenvalue by the full extremes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from inspect_kit.errors import OptionError

from .hutchinson import exact_trace, hutchinson_trace
from .hutchpp import hutchpp_trace
from .lanczos import lanczos_eigs


def group_parameters(names: Sequence[str],
                     blocks: str | Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """Groups of parameter names: ``"layer"`` (by owning module), ``"param"`` (one per tensor)
    or a mapping ``group -> glob pattern(s)``. Every name lands in at most one group."""
    if blocks == "layer":
        out: dict[str, list[str]] = {}
        for n in names:
            out.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(n)
        return out
    if blocks == "param":
        return {n: [n] for n in names}
    if not isinstance(blocks, Mapping):
        raise OptionError(f"blocks must be 'layer', 'param' or a mapping group -> glob pattern(s),"
                          f" got {blocks!r}")
    out, taken = {}, set()
    for group, pats in blocks.items():
        pats = [pats] if isinstance(pats, str) else list(pats)
        members = [n for n in names if n not in taken and any(fnmatchcase(n, p) for p in pats)]
        if not members:
            raise OptionError(f"block {group!r} with patterns {pats} matches no parameter; "
                              f"parameters are {list(names)[:10]}")
        taken.update(members)
        out[group] = members
    return out


def block_spectra(op, blocks: str | Mapping[str, str | Sequence[str]], *, top_k: int = 3,
                  which: str = "both", trace_budget: int = 100, trace_method: str = "hutch++",
                  tol: float = 1e-6, max_steps: int | None = None, seed: int = 0,
                  memory: int | str | None = None,
                  progress: bool | None = None) -> list[dict[str, Any]]:
    """Eigenvalues (``which``, ``top_k`` per end) and trace of every diagonal block.

    A block with at most ``trace_budget`` parameters gets its exact trace (``n_B`` products).
    """
    groups = group_parameters(op.names, blocks)
    out = []
    for i, (group, names) in enumerate(groups.items()):
        sub = op.restrict(names)
        row: dict[str, Any] = {"name": group, "params": names, "n": sub.n}
        if top_k > 0:
            eig = lanczos_eigs(sub, min(top_k, sub.n), which=which, tol=tol, max_steps=max_steps,
                               seed=seed + i, memory=memory, progress=progress)
            row.update(eigenvalues=eig.eigenvalues, residuals=eig.residuals,
                       converged=[bool(c) for c in eig.converged])
        if trace_budget > 0:
            if sub.n <= trace_budget:
                tr = exact_trace(sub, progress=progress)
            elif trace_method == "hutchinson":
                tr = hutchinson_trace(sub, trace_budget, seed=seed + i, memory=memory,
                                      progress=progress)
            else:
                tr = hutchpp_trace(sub, trace_budget, seed=seed + i, memory=memory,
                                   progress=progress)
            row.update(trace=tr.trace, trace_stderr=tr.stderr, trace_method=tr.method)
        row["hvp_count"] = sub.hvp_count
        out.append(row)
    return out
