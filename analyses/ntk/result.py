"""The Result of an empirical NTK analysis (``NTKResult``), as written to ``--json``.

JSON keys: ``form`` ("full", "trace", "per_output"), ``method`` (the one that ran:
"contraction", "ntvp" or "matrix_free") and ``method_requested``; ``eigenvalues`` (descending;
``(O, k)`` for "per_output") with ``residuals`` and ``eigen_method`` ("eigh" or "lanczos");
``trace`` (of the kernel matrix, when formed); ``n_samples``, ``n_outputs``, ``n_params``;
``costs`` (the cost model's prediction per method: ``flops``, ``seconds``, ``bytes``,
``min_bytes``, ``chunk``, ``block``, ``feasible``) and ``memory_bytes`` (the estimate for the
route taken); ``products`` (kernel-vector products, matrix-free); ``labels`` (class of each
sample, classification); ``target_alignment``; ``change`` (against
``compare``: ``relative_frobenius``, ``alignment``, ``distance``, ``cka``,
``compare_eigenvalues``) and ``ggn`` (the Gauss-Newton consistency check) when asked.
``kernel`` is written only when it has at most :data:`JSON_KERNEL_MAX` entries (a larger one
stays in memory; the command line's ``--kernel-out`` writes it as ``.npy``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, _nan_array, measure

#: kernels with more entries than this are left out of the JSON (they stay in memory)
JSON_KERNEL_MAX = 2**18

_ARRAYS = ("ggn_eigenvalues", "ntk_side_eigenvalues", "scaled_ntk_eigenvalues",
           "compare_eigenvalues")


@dataclasses.dataclass(frozen=True)
class NTKResult(Result):
    """Empirical NTK of a model on samples: the kernel, its top eigenvalues, its change."""

    result_type: ClassVar[str] = "NTKResult"
    omit_if_none: ClassVar[tuple[str, ...]] = ("kernel", "change", "ggn", "target_alignment",
                                               "labels")
    item_keys: ClassVar[tuple[str, ...]] = ("output", "rank")
    main_figure: ClassVar[str | None] = "plotting.ntk:plot_ntk"

    form: str
    method: str
    method_requested: str
    eigenvalues: np.ndarray
    residuals: np.ndarray
    eigen_method: str
    trace: float | None
    n_samples: int
    n_outputs: int
    n_params: int
    costs: dict[str, Any]
    memory_bytes: int
    products: int = 0
    kernel: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    labels: list[int] | None = None
    target_alignment: float | None = None
    change: dict[str, Any] | None = None
    ggn: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.kernel is not None and self.kernel.size > JSON_KERNEL_MAX:
            out.pop("kernel", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NTKResult:
        obj = super().from_dict(data)
        fixes: dict[str, Any] = {}
        for name in ("change", "ggn"):
            d = getattr(obj, name)
            if d is not None:
                fixes[name] = {k: (_nan_array(v) if k in _ARRAYS and v is not None else v)
                               for k, v in d.items()}
        return dataclasses.replace(obj, **fixes) if fixes else obj

    @property
    def lambda_max(self) -> float:
        """The largest eigenvalue (over outputs for "per_output")."""
        return float(np.max(self.eigenvalues)) if self.eigenvalues.size else float("nan")

    @property
    def condition(self) -> float:
        """``lambda_1 / lambda_k`` of the computed top ``k`` (first output for "per_output")."""
        ev = np.atleast_2d(self.eigenvalues)[0]
        return float(ev[0] / ev[-1]) if ev.size and ev[-1] > 0 else float("inf")

    def headline(self) -> list[dict[str, Any]]:
        """Top eigenvalue, condition of the computed top-k, trace, target alignment, sizes."""
        out = [measure(WHOLE, "lambda_max", self.lambda_max),
               measure(WHOLE, "condition", self.condition)]
        if self.trace is not None:
            out.append(measure(WHOLE, "trace", self.trace))
        if self.target_alignment is not None:
            out.append(measure(WHOLE, "target_alignment", self.target_alignment))
        return out + [measure(WHOLE, "n_samples", self.n_samples),
                      measure(WHOLE, "n_params", self.n_params)]

    def rows(self) -> list[dict[str, Any]]:
        """One row per eigenvalue (output, rank, value, residual)."""
        vals, res = np.atleast_2d(self.eigenvalues), np.atleast_2d(self.residuals)
        per = self.form == "per_output"
        return [{"output": a if per else None, "rank": i + 1, "eigenvalue": float(v),
                 "residual": float(r)}
                for a, (vs, rs) in enumerate(zip(vals, res)) for i, (v, r) in enumerate(zip(vs, rs))]
