"""The optimiser path projected onto a landscape plane (Li et al. 2018, Sec. 7), with residuals.

Each snapshot ``theta_t`` is written as ``theta_c + D c_t + r_t`` with ``D = [d_1 .. d_K]`` and
``c_t`` the least-squares coordinates ``argmin_c ||theta_t - theta_c - D c||`` (so ``r_t`` is
orthogonal to the plane; for orthonormal PCA directions ``c_t = D^T (theta_t - theta_c)``). The
residual ``||r_t||`` and the relative residual ``||r_t|| / ||theta_t - theta_c||`` say how much
of the path the 2-D picture leaves out, which Li et al.'s plots do not report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inspect_kit.errors import ArchitectureMismatchError
from inspect_kit.params import flatten


def project_trajectory(
    trajectory: Sequence[Mapping[str, torch.Tensor]],
    center: Mapping[str, torch.Tensor],
    dirs: Sequence[Mapping[str, torch.Tensor]],
) -> dict[str, Any]:
    """Least-squares coordinates of every snapshot in the plane of ``dirs`` through ``center``.

    Returns ``{"coords": (T, K), "residual": (T,), "relative_residual": (T,)}`` as numpy arrays
    (float64). Only the tensors of ``center`` are used (buffers in the snapshots are ignored).
    """
    keys = list(center)
    D = torch.stack([flatten({k: d[k].double() for k in keys}) for d in dirs], dim=1)  # (n, K)
    c0 = flatten({k: center[k].double() for k in keys})
    rows = []
    for i, snap in enumerate(trajectory):
        missing = [k for k in keys if k not in snap]
        if missing:
            raise ArchitectureMismatchError(
                f"trajectory snapshot {i} lacks tensor {missing[0]!r}; pass state dicts of the "
                "same model")
        rows.append(flatten({k: snap[k].double() for k in keys}) - c0)
    M = torch.stack(rows)  # (T, n)
    sol = torch.linalg.lstsq(D, M.T).solution  # (K, T)
    R = M - (D @ sol).T
    res = R.norm(dim=1).numpy()
    dist = M.norm(dim=1).numpy()
    rel = np.divide(res, dist, out=np.zeros_like(res), where=dist > 0)
    return {"coords": sol.T.numpy(), "residual": res, "relative_residual": rel}
