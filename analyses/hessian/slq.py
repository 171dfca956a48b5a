"""Spectral density of the Hessian by stochastic Lanczos quadrature (SLQ).

Ubaru, Chen & Saad (2017, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
SIAM J. Matrix Anal. Appl.); used for neural-network Hessians by Ghorbani, Krishnan & Xiao
(2019, "An investigation into neural net optimization via Hessian eigenvalue density", ICML)
and PyHessian (Yao et al. 2020).

The spectral measure ``mu = (1/n) sum_i delta(lambda_i)`` is approximated, for a unit probe
``v`` with random signs, by the Gauss quadrature of ``v^T f(H) v``: ``m`` Lanczos steps from
``v`` give ``T_m = S diag(theta) S^T`` and

    mu_v = sum_j tau_j^2 delta(theta_j),    tau_j = S[0, j]      (E_v[v^T f(H) v] = tr f(H) / n),

exact for polynomials ``f`` of degree <= 2m - 1. Averaging ``n_v`` independent probes
(default 10, run in parallel: one batched product per step) gives the quadrature nodes and
weights. The smooth density on a grid is ``phi(t) = sum_j w_j N(t; theta_j, sigma^2)`` with
``sigma`` in spectrum units (``width=``) or as a fraction of the Ritz range
(``width_fraction=``, default 0.01).

Deflation (default ``deflate=20``): the largest-|lambda| eigenpairs ``(lambda_i, u_i)`` are found
first by Lanczos (:mod:`.lanczos`, converged pairs only, at most ``5 * deflate`` products) and
enter the measure exactly with weight ``1/n`` each; SLQ runs on the projected operator ``P H P``,
``P = I - U U^T``, from projected probes, and its weights are scaled by ``(n - d)/n``. The
outliers then carry no probe noise, which is what dominates the Wasserstein error otherwise (a
weight error ``delta`` on an outlier moves mass ``delta`` across the whole spectral range) -- the
same idea as Hutch++.

Derived numbers: the mass below ``-threshold`` (negative curvature that is not round-off
noise; plain "fraction of negative nodes" counts the bulk at |lambda| < 1e-3 whose sign SLQ
cannot tell), and a density of ``log10 |lambda|`` for the positive and negative sides, which
resolves the bulk near zero (Papyan 2019 style).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from inspect_kit.errors import OptionError, SizeLimitError
from inspect_kit.memory import budget as mem_budget
from inspect_kit.memory import human
from inspect_kit.progress import bar

from .hutchinson import rademacher
from .lanczos import lanczos_eigs, lanczos_tridiag


def _probe_group(op, steps: int, n_probes: int, n_deflated: int,
                 memory: int | str | None) -> int:
    """Probes per parallel group so that their Lanczos bases fit in the memory budget."""
    itemsize = torch.empty(0, dtype=op.dtype).element_size()
    per_probe = (steps + 2) * op.n * itemsize
    room = mem_budget(memory) - n_deflated * op.n * itemsize
    if room < per_probe:
        fits = max(0, room // (op.n * itemsize) - 2)
        raise SizeLimitError(
            f"one SLQ probe of {steps} steps keeps {steps} vectors of {op.n:,} entries "
            f"({human(per_probe)}), over the memory budget ({human(mem_budget(memory))}); use "
            f"density_steps <= {fits}, a smaller density_deflate, or raise memory=")
    return int(max(1, min(n_probes, room // per_probe)))


@dataclasses.dataclass(frozen=True)
class Density:
    """SLQ output: per-probe ``nodes``/``weights`` ``(n_v, m)`` (each row's weights sum to 1)
    and the broadened ``values`` on ``grid``; see :func:`slq_density`."""

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    values: np.ndarray
    width: float
    threshold: float
    negative_mass: float
    positive_mass: float
    log_grid: np.ndarray
    log_values_positive: np.ndarray
    log_values_negative: np.ndarray
    log_width: float
    trace: float
    trace_stderr: float
    products: int

    def measure(self) -> tuple[np.ndarray, np.ndarray]:
        """The averaged quadrature as flat ``(nodes, weights)`` (weights sum to 1)."""
        w = self.weights / self.weights.shape[0]
        return self.nodes.ravel(), w.ravel()


def gaussian_mixture(t: np.ndarray, nodes: np.ndarray, weights: np.ndarray,
                     sigma: float) -> np.ndarray:
    """``sum_j w_j N(t; nodes_j, sigma^2)`` on the points ``t``."""
    z = (t[:, None] - nodes[None, :]) / sigma
    return (np.exp(-0.5 * z * z) @ weights) / (sigma * np.sqrt(2 * np.pi))


def broaden(nodes: np.ndarray, weights: np.ndarray, *, width: float | None = None,
            width_fraction: float = 0.01, n_grid: int = 1000) -> tuple[np.ndarray, np.ndarray, float]:
    """Grid and Gaussian-broadened density of a weighted point set (``sum w = 1``)."""
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    sigma = float(width) if width is not None else float(width_fraction) * span
    if not sigma > 0:
        raise OptionError(f"density width must be > 0, got width={width}, "
                          f"width_fraction={width_fraction}")
    grid = np.linspace(lo - 4 * sigma, hi + 4 * sigma, int(n_grid))
    return grid, gaussian_mixture(grid, nodes, weights, sigma), sigma


def log_view(nodes: np.ndarray, weights: np.ndarray, floor: float, *, log_width: float = 0.1,
             n_grid: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densities of ``log10|lambda|`` for ``lambda > floor`` and ``lambda < -floor``.

    Each side's values integrate (over ``log10|lambda|``) to its mass; mass within
    ``|lambda| <= floor`` is left out.
    """
    top = max(float(np.abs(nodes).max()), floor * 10)
    grid = np.linspace(np.log10(floor), np.log10(top) + 3 * log_width, int(n_grid))
    pos, neg = nodes > floor, nodes < -floor
    vp = gaussian_mixture(grid, np.log10(nodes[pos]), weights[pos], log_width)
    vn = gaussian_mixture(grid, np.log10(-nodes[neg]), weights[neg], log_width)
    return grid, vp, vn


def slq_density(
    op,
    *,
    n_probes: int = 10,
    steps: int = 100,
    width: float | None = None,
    width_fraction: float = 0.01,
    threshold: float | None = None,
    n_grid: int = 1000,
    deflate: int = 20,
    seed: int = 0,
    memory: int | str | None = None,
    progress: bool | None = None,
) -> Density:
    """Spectral density of ``op`` by SLQ with ``n_probes`` seeded probes of ``steps`` steps.

    ``threshold`` (spectrum units) separates real negative curvature from the bulk near zero;
    default ``1e-3 * max|theta|``. Cost: ``n_probes * steps`` products (batched by probe).
    Memory: each probe keeps its ``steps`` basis vectors (full reorthogonalisation); probes run
    in parallel groups that fit the ``memory`` budget, and a budget too small for one probe is
    refused with the number of steps that fits.
    """
    if int(n_probes) < 1 or int(steps) < 1:
        raise OptionError(f"n_probes and steps must be >= 1, got {n_probes}, {steps}")
    g = torch.Generator(device=op.device).manual_seed(int(seed))
    start = op.hvp_count
    d_vals, U = np.zeros(0), None
    if deflate > 0 and op.n > 2 * deflate:
        eig = lanczos_eigs(op, int(deflate), which="magnitude", seed=int(seed) + 7,
                           max_steps=min(op.n, 5 * int(deflate)), return_vectors=True,
                           memory=memory, criterion="residual", progress=progress)
        keep = np.flatnonzero(eig.converged)
        d_vals = eig.eigenvalues[keep]
        U = eig.vectors[torch.as_tensor(keep, dtype=torch.long)] if len(keep) else None
    V = rademacher(int(n_probes), op.n, g, op.dtype, op.device)

    def project(W: torch.Tensor) -> torch.Tensor:
        if U is None:
            return W
        for _ in range(2):
            W = W - (W @ U.T) @ U
        return W

    V = project(V)
    m = int(min(steps, op.n - len(d_vals)))
    group = _probe_group(op, m, int(n_probes), 0 if U is None else U.shape[0], memory)
    ritz = []
    with bar(m * int(n_probes), desc="density (slq)", progress=progress, unit="hvp") as pbar:
        for i0 in range(0, int(n_probes), group):
            Vg = V[i0:i0 + group]
            k = len(Vg)
            tri = lanczos_tridiag(lambda W: project(op.matvec(W)), Vg, m, generator=g,
                                  on_step=lambda j, k=k: pbar.update(k))
            ritz += [tri.ritz(i) for i in range(len(Vg))]
    n_rest = (op.n - len(d_vals)) / op.n
    nodes, weights = [], []
    for i in range(int(n_probes)):
        theta, s = ritz[i]
        nodes.append(np.concatenate([d_vals, theta]))
        w = s[0] ** 2 / np.sum(s[0] ** 2)
        weights.append(np.concatenate([np.full(len(d_vals), 1.0 / op.n), n_rest * w]))
    nodes_a, weights_a = np.array(nodes), np.array(weights)
    flat_nodes, flat_w = nodes_a.ravel(), weights_a.ravel() / int(n_probes)
    grid, values, sigma = broaden(flat_nodes, flat_w, width=width, width_fraction=width_fraction,
                                  n_grid=n_grid)
    radius = float(np.abs(flat_nodes).max())
    thr = float(threshold) if threshold is not None else 1e-3 * radius
    if thr <= 0:
        thr = 1e-12
    log_grid, lp, ln = log_view(flat_nodes, flat_w, thr)
    per_probe = op.n * np.sum(weights_a * nodes_a, axis=1)  # deflated Hutchinson samples
    stderr = float(per_probe.std(ddof=1) / np.sqrt(len(per_probe))) if len(per_probe) > 1 \
        else float("nan")
    return Density(
        nodes=nodes_a, weights=weights_a, grid=grid, values=values, width=sigma, threshold=thr,
        negative_mass=float(flat_w[flat_nodes < -thr].sum()),
        positive_mass=float(flat_w[flat_nodes > thr].sum()),
        log_grid=log_grid, log_values_positive=lp, log_values_negative=ln, log_width=0.1,
        trace=float(per_probe.mean()), trace_stderr=stderr, products=op.hvp_count - start,
    )
