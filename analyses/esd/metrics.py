"""Spectral metrics of one ESD ``lambda_i`` (eigenvalues of ``W^T W``, no 1/N scaling).

Norm metrics (Martin & Mahoney 2021, "Predicting trends in the quality of state-of-the-art neural
networks without access to training or testing data", Nat. Commun. 12:4122):

* ``log_norm = log10 sum lambda`` (``sum lambda = ||W||_F^2``),
* ``log_spectral_norm = log10 lambda_max`` (``lambda_max = ||W||_2^2``, the *squared* norm),
* ``alpha_hat = alpha * log10 lambda_max`` (scale dependent, can be negative),
* ``log_alpha_norm = log10 sum lambda^alpha``, ``stable_rank = sum lambda / lambda_max``.

Marchenko-Pastur fit (:func:`mp_fit`, Martin & Mahoney 2021 JMLR 22:165): the ESD is rescaled to
mean 1, a linear-kernel KDE (bandwidth 0.1, 1000 points) is computed *once*, and the MP variance
``sigma`` minimises the squared residual between the MP density and the KDE over WeightWatcher's
brute grid ``[0.05, 2) * sigma*`` (step ``0.01 sigma*``, ``sigma* = sqrt(lambda_max) / (1 +
Q^-1/2)``), polished by Nelder-Mead; the same objective, penalties and quarter-circle branch
(Q = 1) as WeightWatcher 0.7.7, but vectorised. The bulk edge is ``lambda_+ = (sigma (1 +
Q^-1/2))^2``; spikes are eigenvalues above ``lambda_+ + sqrt(Q^-1/2 lambda_+^(2/3) M^-2/3)``
(Tracy-Widom margin); ``mp_softrank = lambda_+ / lambda_max``.

SETOL detX (Martin & Hinrikus 2025, "SETOL: A Semi-Empirical Theory of (Deep) Learning"):
with ``lambda~ = lambda * n / sum lambda``, the detX tail is the smallest top-k set with
``prod lambda~ < 1`` (scan from the top); ``detx_val`` is where it starts (original units),
``erg_gap = detx_num - num_tail`` (0 when the detX tail equals the power-law tail: the ERG
condition), ``detx_logsum = sum_{top k} ln lambda~``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.optimize

KDE_BANDWIDTH = 0.1
KDE_POINTS = 1000
KDE_THRESH = 0.01


def norm_metrics(evals: np.ndarray, alpha: float) -> dict[str, float]:
    """Norm-based metrics of an ESD (all eigenvalues, including tiny ones)."""
    ev = np.asarray(evals, dtype=float)
    norm = float(np.sum(ev))
    lmax = float(np.max(ev)) if len(ev) else math.nan
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lsn = math.log10(lmax) if lmax > 0 else math.nan
        lan = float(np.log10(np.sum(ev ** alpha))) if math.isfinite(alpha) else math.nan
    p = ev / norm if norm > 0 else ev
    p = p[p > 0]
    rank = int(np.sum(np.sqrt(ev) > np.sqrt(lmax) * max(ev.shape[0], 1) * np.finfo(float).eps)) \
        if len(ev) else 0
    entropy = float(-np.sum(p * np.log(p)) / math.log(rank)) if rank > 1 else math.nan
    return {
        "norm": norm,
        "log_norm": math.log10(norm) if norm > 0 else math.nan,
        "spectral_norm": lmax,
        "log_spectral_norm": lsn,
        "alpha_hat": alpha * lsn if math.isfinite(alpha) else math.nan,
        "log_alpha_norm": lan,
        "stable_rank": norm / lmax if lmax > 0 else math.nan,
        "entropy": entropy,
    }


def linear_kde(x: np.ndarray, grid: np.ndarray, bw: float = KDE_BANDWIDTH) -> np.ndarray:
    """Linear-kernel density ``(1/(n h)) sum_i max(0, 1 - |g - x_i| / h)`` on ``grid``.

    Exact, in ``O((n + G) log n)`` with prefix sums (same values as scikit-learn's
    ``KernelDensity(kernel="linear")``).
    """
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    cs = np.concatenate([[0.0], np.cumsum(xs)])
    lo = np.searchsorted(xs, grid - bw, side="right")  # first x_i > g - h
    mid = np.searchsorted(xs, grid, side="right")      # first x_i > g
    hi = np.searchsorted(xs, grid + bw, side="left")   # first x_i >= g + h
    nl, sl = mid - lo, cs[mid] - cs[lo]                # x_i in (g-h, g]
    nr, sr = hi - mid, cs[hi] - cs[mid]                # x_i in (g, g+h)
    total = (nl + nr) - ((grid * nl - sl) + (sr - grid * nr)) / bw
    return np.clip(total, 0.0, None) / (n * bw)


def _mp_density(x: np.ndarray, Q: float, sigma: np.ndarray) -> np.ndarray:
    s = sigma[:, None]
    y = 1.0 / Q
    b = (s * (1 + np.sqrt(1 / Q))) ** 2
    a = (s * (1 - np.sqrt(1 / Q))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        val = (1 / (2 * np.pi * s * s * x[None, :] * y)) * np.sqrt((b - x[None, :]) * (x[None, :] - a))
    return np.nan_to_num(val)


def _qc_density(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    s = sigma[:, None]
    with np.errstate(invalid="ignore"):
        val = (1 / (np.pi * s * s)) * np.sqrt(4 - x[None, :] ** 2)
    return np.nan_to_num(val)


class _MPObjective:
    """Squared residual MP(sigma) - KDE on the KDE's support, vectorised over sigma."""

    def __init__(self, to_fit: np.ndarray, Q: float, bw: float) -> None:
        xde = np.linspace(0, np.max(to_fit) + 0.5, KDE_POINTS)
        yde = linear_kde(to_fit, xde, bw)
        good = yde > KDE_THRESH
        self.x, self.y, self.Q = xde[good], yde[good], Q
        if len(self.y):
            self.xpeak = self.x[int(np.argmax(self.y))]
            self.xmax = float(np.max(self.x))

    def __call__(self, sigma: np.ndarray) -> np.ndarray:
        sigma = np.atleast_1d(np.asarray(sigma, dtype=float))
        if not len(self.y):
            return np.zeros(len(sigma))
        if self.Q == 1:
            return np.sum((_qc_density(self.x, sigma) - self.y) ** 2, axis=1)
        ss = np.sum((_mp_density(self.x, self.Q, sigma) - self.y) ** 2, axis=1)
        b = (sigma * (1 + np.sqrt(1 / self.Q))) ** 2
        a = (sigma * (1 - np.sqrt(1 / self.Q))) ** 2
        bad = (b < self.xpeak) | (b > self.xmax) | (a > self.xpeak)
        return np.where(bad, 1e6 * len(self.y), ss)


def mp_fit(evals: np.ndarray, N: int, M: int, *, bw: float = KDE_BANDWIDTH) -> dict[str, float]:
    """Marchenko-Pastur fit of an ESD of an ``N x M`` matrix (``N >= M``); see module docstring.

    Returns ``sigma_mp``, ``bulk_max``/``bulk_min`` (original units), ``num_spikes``,
    ``mp_softrank`` and ``W_scale`` (the rescaling factor of W).
    """
    ev = np.asarray(evals, dtype=float)
    Q = N / M
    total = float(np.sum(ev))
    if len(ev) == 0 or total <= 0:
        return {"sigma_mp": math.nan, "bulk_max": math.nan, "bulk_min": math.nan,
                "num_spikes": -1, "mp_softrank": math.nan, "W_scale": math.nan}
    wscale = math.sqrt(len(ev)) / math.sqrt(total)
    lam = (wscale * wscale) * ev
    lmax = float(np.max(lam))
    sig_star = math.sqrt(lmax / (1.0 + 1.0 / math.sqrt(Q)) ** 2)
    to_fit = np.sqrt(lam) if Q == 1 else lam
    obj = _MPObjective(to_fit, Q, bw)
    grid = np.mgrid[slice(0.05 * sig_star, 2.0 * sig_star, 0.01 * sig_star)]
    vals = obj(grid)
    s0 = grid[int(np.argmin(vals))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.optimize.fmin(lambda s: float(obj(s)[0]), np.array([s0]), full_output=1,
                                  disp=False)
    s1 = float(np.asarray(res[0]).reshape(-1)[0])
    bulk_max = (s1 * (1 + 1 / math.sqrt(Q))) ** 2
    bulk_min = (s1 * (1 - 1 / math.sqrt(Q))) ** 2
    tw = 1 / math.sqrt(Q) * bulk_max ** (2 / 3) * M ** (-2 / 3)
    num_spikes = int(np.sum(lam > bulk_max + math.sqrt(tw)))
    return {
        "sigma_mp": s1,
        "bulk_max": bulk_max / (wscale * wscale),
        "bulk_min": bulk_min / (wscale * wscale),
        "num_spikes": num_spikes,
        "mp_softrank": bulk_max / lmax,
        "W_scale": wscale,
    }


def detx(evals: np.ndarray, num_tail: int | None = None) -> dict[str, float]:
    """SETOL detX tail: ``detx_num``, ``detx_val``, ``erg_gap``, ``detx_logsum`` (see module doc).

    ``evals`` sorted ascending (all eigenvalues). As in WeightWatcher, when no top set has
    ``prod < 1`` the whole spectrum is the tail (``detx_num = n``).
    """
    ev = np.sort(np.asarray(evals, dtype=float))
    n = len(ev)
    out = {"detx_num": 0, "detx_val": math.nan, "erg_gap": math.nan, "detx_logsum": math.nan}
    if n < 2 or not ev[0] < ev[-1]:
        return out
    lam = ev * (n / np.sum(ev))
    with np.errstate(divide="ignore"):
        logs = np.log(lam)
    csum = np.cumsum(logs[::-1])  # csum[k-1] = sum of the top k logs
    below = np.nonzero(csum[: n - 1] < 0)[0]
    if len(below):
        k = int(below[0]) + 1
        idx = n - k
    else:
        k, idx = n, 1
    out["detx_num"] = k
    out["detx_val"] = float(ev[idx])
    out["detx_logsum"] = float(np.sum(logs[idx:]))
    if num_tail is not None and num_tail >= 0:
        out["erg_gap"] = k - int(num_tail)
    return out


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance between two sorted eigenvalue vectors taken as weight vectors
    (WeightWatcher's ``rand_distance``)."""
    from scipy.stats import entropy

    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    m = (p + q) / 2
    return float(np.sqrt((entropy(p, m) + entropy(q, m)) / 2))
