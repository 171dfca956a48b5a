"""Shared fixtures. Progress bars off, Agg backend, small thread count for a 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """The bundled digits data set (train/test split, standardised)."""
    from inspect_kit.data import load_data

    return load_data("digits")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
