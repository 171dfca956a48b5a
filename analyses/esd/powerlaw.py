"""Power-law tail fit of an eigenvalue spectrum (Clauset, Shalizi & Newman 2009, SIAM Rev. 51:661).

For sorted eigenvalues ``x_0 <= ... <= x_{N-1}`` above a threshold (1e-5, as WeightWatcher),
every ``x_i`` but the largest is a candidate ``xmin``. With ``n_i = N - i`` tail points,

    alpha_i = 1 + n_i / sum_{j >= i} ln(x_j / x_i)                       (continuous MLE, eq. 3.1)
    D_i     = max_{j >= i} | 1 - (x_j / x_i)^(1 - alpha_i) - (j - i) / n_i |   (one-sided KS)

(``D_i = 1`` when ``alpha_i <= 1``), and the fit is the candidate with the smallest ``D_i``;
``sigma = (alpha - 1) / sqrt(n)`` is the MLE standard error. This is exactly WeightWatcher 0.7.7's
``WWFit`` (including its tie behaviour: ``1 ** -inf == 1``), computed here in vectorised chunks.

With fewer than 20 eigenvalues WeightWatcher 0.7.7 uses a bias-corrected estimator
``alpha = 1 + (n - 1) / sum ln(x_j / x_i)`` on tails of at least 8 points (candidates whose log
sum is <= 1e-12 or whose alpha <= 1 get ``D = 1``), and then, as its constructor does, keeps the
candidate of smallest ``D``; :func:`fit_power_law` reproduces that branch too.

``exact=True`` evaluates ``(x_j/x_i) ** e`` and the suffix log sums with the same floating-point
operations as WeightWatcher (agreement ~1e-14); ``exact=False`` uses cumulative sums and a float32
``exp(e * (ln x_j - ln x_i))`` screen whose near-minimal candidates are recomputed exactly (same
xmin, alpha to ~1e-12, several times faster).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

EVALS_THRESH = 1e-5
SMALL_N_CUTOFF = 20
SMALL_N_KMIN = 8
_CHUNK_ELEMS = 2_000_000


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law` (``alpha`` is NaN when the fit failed)."""

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    n_tail: int
    index: int
    small_n: bool
    status: str  # "success" | "failed"


def _failed(n: int) -> PowerLawFit:
    return PowerLawFit(math.nan, math.nan, math.nan, math.nan, math.nan, 0, -1, n < SMALL_N_CUTOFF,
                       "failed")


def _suffix_log_sums(logx: np.ndarray, exact: bool) -> np.ndarray:
    if exact:
        return np.array([np.sum(logx[i:]) for i in range(len(logx) - 1)])
    return np.cumsum(logx[::-1])[::-1][:-1]


def ks_distances(x: np.ndarray, alphas: np.ndarray, *, empirical_first: bool = False,
                 rows: np.ndarray | None = None) -> np.ndarray:
    """``D_i`` for the candidates ``rows`` (default all ``i < N - 1``), WeightWatcher's arithmetic.

    ``(x_j / x_i) ** (1 - alpha_i)`` over the triangle ``j >= i`` in row chunks of ~2M elements.
    ``empirical_first`` evaluates ``|k/n - F_fit|`` (WeightWatcher's small-N form) instead of
    ``|1 - r - k/n|``; both are the same number up to rounding.
    """
    N = len(x)
    idx_all = np.arange(N - 1) if rows is None else np.asarray(rows, dtype=int)
    D = np.ones(len(idx_all))
    step = max(1, _CHUNK_ELEMS // max(N, 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for c in range(0, len(idx_all), step):
            idx = idx_all[c:c + step]
            a = int(idx.min())
            al = alphas[idx]
            k = np.arange(a, N)[None, :] - idx[:, None]
            n = (N - idx).astype(float)[:, None]
            r = (x[None, a:] / x[idx, None]) ** (-al + 1)[:, None]
            if empirical_first:
                dev = np.abs(k / n - (1.0 - r))
            else:
                dev = np.abs(1 - r - k / n)
            dev = np.where(k >= 0, dev, 0.0)
            D[c:c + step] = np.where(al > 1, np.max(dev, axis=1), 1.0)
    return D


def ks_distances_fast(x: np.ndarray, alphas: np.ndarray, *, margin: float = 1e-4) -> np.ndarray:
    """:func:`ks_distances` in float32 torch, then exact float64 for the near-minimal candidates.

    Float32 ``D`` is within ~1e-5 of the float64 value, so every candidate whose float32 ``D`` is
    within ``margin`` of the minimum is recomputed exactly: the argmin is WeightWatcher's.
    Ties (``x_j == x_i``) give ``r = 1`` as ``1 ** -inf`` does.
    """
    N = len(x)
    C = N - 1
    lx = torch.from_numpy(np.log(x))
    al64 = np.asarray(alphas, dtype=np.float64)
    al = torch.from_numpy(al64)
    out = torch.ones(C, dtype=torch.float32)
    step = max(1, _CHUNK_ELEMS // max(N, 1))
    for a in range(0, C, step):
        b = min(C, a + step)
        dl = lx[None, a:] - lx[a:b, None]
        ties = dl == 0
        r = dl.mul_((1.0 - al[a:b])[:, None]).to(torch.float32).exp_()
        r.masked_fill_(ties, 1.0)
        k = (torch.arange(a, N, dtype=torch.float32)[None, :]
             - torch.arange(a, b, dtype=torch.float32)[:, None])
        n = (N - torch.arange(a, b, dtype=torch.float32))[:, None]
        dev = r.neg_().add_(1.0).sub_(k.div(n)).abs_()
        dev.masked_fill_(k < 0, 0.0)
        out[a:b] = torch.where(al[a:b] > 1, dev.amax(dim=1), torch.tensor(1.0))
    D = out.double().numpy()
    near = np.nonzero(D <= D.min() + margin)[0]
    D[near] = ks_distances(x, al64, rows=near)
    return D


def fit_power_law(evals: np.ndarray, *, thresh: float = EVALS_THRESH, exact: bool = True,
                  small_n: bool = True) -> PowerLawFit:
    """Fit ``alpha`` and ``xmin`` to the eigenvalues above ``thresh`` (see module docstring).

    ``small_n=False`` forces the standard estimator even under 20 eigenvalues.
    """
    allv = np.asarray(evals, dtype=np.float64)
    x = np.sort(allv[allv > thresh])
    N = len(x)
    if N < 2:
        return _failed(N)
    logx = np.log(x, dtype=np.float64)
    S = _suffix_log_sums(logx, exact)
    n = (N - np.arange(N - 1)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if small_n and N < SMALL_N_CUTOFF:
            s = S - n * logx[:-1]
            ok = (n >= SMALL_N_KMIN) & (s > 1e-12)
            alphas = np.where(ok, 1.0 + (n - 1.0) / np.where(ok, s, 1.0), 0.0)
            D = ks_distances(x, alphas, empirical_first=True)
            D = np.where(ok & (alphas > 1), D, 1.0)
            if not np.any(ok & (alphas > 1)):
                # WeightWatcher's fallback: the whole sample as the tail
                s0 = np.sum(logx) - N * logx[0]
                if s0 > 1e-12:
                    alphas[0] = 1.0 + (N - 1.0) / s0
                    D[0] = ks_distances(x, alphas, empirical_first=True, rows=np.array([0]))[0] \
                        if alphas[0] > 1 else 1.0
            small = True
        else:
            alphas = 1 + n / (S - n * logx[:-1])
            D = ks_distances(x, alphas) if exact else ks_distances_fast(x, alphas)
            small = False
        sigmas = (alphas - 1) / np.sqrt(n)
    i = int(np.argmin(D))
    xmin = float(x[i])
    return PowerLawFit(
        alpha=float(alphas[i]), xmin=xmin, xmax=float(x[-1]), D=float(D[i]),
        sigma=float(sigmas[i]), n_tail=int(np.sum(allv >= xmin)), index=i, small_n=small,
        status="success",
    )


def mle_alpha(tail: np.ndarray, xmin: float, *, bias_corrected: bool = False) -> float:
    """Continuous MLE ``1 + n / sum ln(x / xmin)`` (``n - 1`` in the numerator if bias-corrected)."""
    t = np.asarray(tail, dtype=float)
    s = float(np.sum(np.log(t / xmin)))
    num = len(t) - 1 if bias_corrected else len(t)
    return math.inf if s == 0 else 1.0 + num / s


def bootstrap_ci(evals: np.ndarray, fit: PowerLawFit, *, n_boot: int = 200, level: float = 0.9,
                 seed: int = 0) -> tuple[float, float]:
    """Fixed-xmin bootstrap confidence interval for alpha.

    The ``n`` tail eigenvalues ``>= xmin`` are resampled with replacement ``n_boot`` times and
    the MLE is recomputed with ``xmin`` held fixed; the interval is the central ``level``
    percentile range. (Re-selecting xmin per resample is biased; see the reference study §2.3.)
    """
    if fit.status != "success" or not math.isfinite(fit.alpha) or n_boot <= 0:
        return (math.nan, math.nan)
    x = np.asarray(evals, dtype=float)
    tail = x[x >= fit.xmin]
    n = len(tail)
    if n < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    logs = np.log(tail / fit.xmin)
    sums = logs[rng.integers(0, n, size=(n_boot, n))].sum(axis=1)
    num = n - 1 if fit.small_n else n
    with np.errstate(divide="ignore"):
        alphas = np.where(sums > 0, 1.0 + num / np.where(sums > 0, sums, 1.0), np.inf)
    with np.errstate(invalid="ignore"):
        lo, hi = np.percentile(alphas, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))


def degeneracy(evals: np.ndarray, fit: PowerLawFit | None = None, *,
               thresh: float = EVALS_THRESH, rel_tol: float = 1e-6) -> str | None:
    """Why a power law is not meaningful for this spectrum, or None.

    Flags: fewer than 2 eigenvalues above ``thresh``; all eigenvalues equal within ``rel_tol``
    (an orthogonal or scaled-orthogonal matrix, where the MLE divides by ~0 and returns ~1e15);
    a fitted tail whose points are all equal; a non-finite or <= 1 alpha.
    """
    x = np.asarray(evals, dtype=float)
    x = x[x > thresh]
    if len(x) < 2:
        return f"only {len(x)} eigenvalue(s) above {thresh:g}: no spectrum to fit"
    if math.log(x.max() / x.min()) < rel_tol:
        return ("all eigenvalues equal within 1e-6 (orthogonal-like matrix): power law not "
                "meaningful")
    if fit is not None and fit.status == "success":
        tail = x[x >= fit.xmin]
        if len(tail) < 2 or math.log(tail.max() / tail.min()) < rel_tol:
            return "tail eigenvalues all equal (ties): power law not meaningful"
        if not math.isfinite(fit.alpha) or fit.alpha <= 1:
            return f"alpha = {fit.alpha} is not a valid power-law exponent"
    return None
