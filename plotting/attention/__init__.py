"""Figures of :class:`analyses.attention.result.AttentionResult`.

Every function takes one Result or several (a mapping ``label -> Result`` or a sequence) and
shows them side by side, e.g. softmax vs Fourier-KArAt attention of the same ViT. Image patches
are drawn as images, token sequences as per-token bars and token x token heatmaps (never as an
invented image), Swin windows as window maps with their borders. Signed maps (non-softmax
attention, ``raw`` rollout) use a diverging colour map centred at zero, so negative attention is
shown, not hidden.

* :func:`plot_heads` - the query token's attention per layer and head for one input.
* :func:`plot_matrix` - token x token attention (head mean) per layer, for sequences.
* :func:`plot_rollout` - the rollout of the query token (Abnar & Zuidema 2020).
* :func:`plot_distance` - attention distance, entropy and negative mass per layer and head.
* :func:`plot_spectra` - singular values of the attention matrices (after / before activation).
* :func:`plot_summary` - one figure of all the above for one Result (the CLI's ``--plot``).
"""

from .maps import plot_heads, plot_matrix, plot_rollout
from .stats import plot_distance, plot_spectra
from .summary import plot_summary

__all__ = ["plot_distance", "plot_heads", "plot_matrix", "plot_rollout", "plot_spectra",
           "plot_summary"]
