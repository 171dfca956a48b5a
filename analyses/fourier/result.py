"""The Result of :func:`analyses.fourier.api.fourier`.

Arrays indexed by frequency have length ``K + 1`` (``K = p // 2``): index ``k`` is frequency
``k`` (``w_k = 2 pi k / p``), index 0 the constant. 2-D spectra are ``(2K + 1, 2K + 1)`` over
the rows of :func:`analyses.fourier.basis.fourier_basis` (``const, cos 1, sin 1, ...``) for
``a`` (rows) and ``b`` (columns).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from inspect_kit.results import WHOLE, Result, _nan_array, measure

#: the per-split metrics of ``metrics`` and of the trajectory (``{split}_{name}``)
METRICS = ("loss", "accuracy", "restricted_loss", "restricted_accuracy", "excluded_loss",
           "excluded_accuracy")


@dataclasses.dataclass(frozen=True)
class FourierResult(Result):
    """The Fourier audit of a modular-addition model (Nanda et al. 2023).

    ``key_frequencies`` (chosen by ``key_rule``) and ``key_share``, the fraction of the
    embedding's non-constant energy they hold. ``embedding_spectrum``: the norm ``s_k`` of the
    embedding per frequency (``unembedding_spectrum`` likewise over the output classes).
    ``logit_energy``: fraction of the logits' variance over the (a, b) grid in the
    ``cos/sin(w_k (a + b))`` directions; ``logit_spectrum`` the 2-D energy fractions (summed
    over outputs). Neurons (when located): ``neuron_fractions`` ``(N, K + 1)`` (share of each
    neuron's variance per frequency), ``neuron_frequency`` and ``neuron_purity`` ``(N,)``,
    ``neuron_spectrum`` (the mean 2-D energy fraction). ``metrics``: per split (``train``,
    ``test`` and ``all``, both together) the full, restricted and excluded loss and accuracy and
    ``n``. ``trajectory``
    (when snapshots were given): ``epoch``, every ``{split}_{metric}``, ``key_share``,
    ``weight_norm`` (sum of squared parameters) and ``embedding_spectrum`` ``(S, K + 1)``, one
    entry per snapshot, with the final model's key frequencies throughout.
    """

    p: int
    model: str
    embedding: str
    neurons: str | None
    unembedding: str | None
    key_rule: str
    key_frequencies: tuple[int, ...]
    key_share: float
    embedding_spectrum: np.ndarray
    logit_energy: np.ndarray
    logit_spectrum: np.ndarray
    metrics: dict[str, dict[str, float]]
    unembedding_spectrum: np.ndarray | None = None
    neuron_fractions: np.ndarray | None = None
    neuron_frequency: np.ndarray | None = None
    neuron_purity: np.ndarray | None = None
    neuron_spectrum: np.ndarray | None = None
    trajectory: dict[str, Any] | None = None

    result_type: ClassVar[str] = "FourierResult"
    omit_if_none: ClassVar[tuple[str, ...]] = (
        "unembedding_spectrum", "neuron_fractions", "neuron_frequency", "neuron_purity",
        "neuron_spectrum", "trajectory")
    item_keys: ClassVar[tuple[str, ...]] = ("frequency",)
    main_figure: ClassVar[str | None] = "plotting.fourier:plot_summary"

    def headline(self) -> list[dict[str, Any]]:
        """The key frequencies' share of the embedding and of the logits, then every metric of
        every split (item: the split)."""
        keys = list(self.key_frequencies)
        out = [measure(WHOLE, "key_share", self.key_share),
               measure(WHOLE, "key_logit_energy", float(self.logit_energy[keys].sum())),
               measure(WHOLE, "key_frequencies", len(keys))]
        for split, m in self.metrics.items():
            out += [measure(split, k, v) for k, v in m.items() if isinstance(v, (int, float))]
        return out

    @property
    def n_frequencies(self) -> int:
        """``K = p // 2``."""
        return self.p // 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FourierResult:
        out = super().from_dict(data)
        changes: dict[str, Any] = {"key_frequencies": tuple(int(k) for k in out.key_frequencies)}
        if out.neuron_frequency is not None:
            changes["neuron_frequency"] = np.asarray(out.neuron_frequency, dtype=int)
        if out.trajectory is not None:
            changes["trajectory"] = {k: _nan_array(v) for k, v in out.trajectory.items()}
        return dataclasses.replace(out, **changes)

    def rows(self) -> list[dict[str, Any]]:
        """One row per frequency ``k = 1..K``: embedding norm, key or not, logit energy share,
        and (with neurons) how many neurons have it as their frequency and their mean purity."""
        out = []
        for k in range(1, self.n_frequencies + 1):
            row: dict[str, Any] = {"frequency": k, "key": k in self.key_frequencies,
                                   "embedding_norm": float(self.embedding_spectrum[k]),
                                   "logit_energy": float(self.logit_energy[k])}
            if self.unembedding_spectrum is not None:
                row["unembedding_norm"] = float(self.unembedding_spectrum[k])
            if self.neuron_frequency is not None and self.neuron_purity is not None:
                mine = self.neuron_frequency == k
                row["neurons"] = int(mine.sum())
                row["mean_purity"] = float(self.neuron_purity[mine].mean()) if mine.any() \
                    else float("nan")
            out.append(row)
        return out

    def summary(self) -> str:
        """A few lines: key frequencies and their share, the losses per split, neurons."""
        lines = [f"p = {self.p}: key frequencies {list(self.key_frequencies)} ({self.key_rule}), "
                 f"{100 * self.key_share:.1f}% of the embedding's energy; logits "
                 f"{100 * float(self.logit_energy[list(self.key_frequencies)].sum()):.1f}% in "
                 "their (a+b) directions"]
        for split, m in self.metrics.items():
            lines.append(f"{split:<5} loss {m['loss']:.4g} (acc {m['accuracy']:.3f})  restricted "
                         f"{m['restricted_loss']:.4g} (acc {m['restricted_accuracy']:.3f})  "
                         f"excluded {m['excluded_loss']:.4g} (acc {m['excluded_accuracy']:.3f})")
        if self.neuron_purity is not None and self.neuron_frequency is not None:
            alive = self.neuron_frequency > 0
            on_key = np.isin(self.neuron_frequency, self.key_frequencies) & alive
            median = float(np.median(self.neuron_purity[alive])) if alive.any() else float("nan")
            lines.append(f"neurons: {int(alive.sum())} active, {int(on_key.sum())} on a key "
                         f"frequency, median purity {median:.3f}")
        return "\n".join(lines)
