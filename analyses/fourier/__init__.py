"""Fourier features of modular addition (Nanda et al. 2023): spectra over Z_p, key frequencies,
neuron purity, restricted and excluded loss, over training. Entry point :func:`fourier`."""

from .api import fourier
from .result import FourierResult

__all__ = ["FourierResult", "fourier"]
