"""Shared fixtures. Progress bars off, Agg backend, small thread count for a 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
# One intra-op thread per process unless the caller says otherwise: the suite's problems are
# small, it runs in two worker processes (pyproject's addopts), and the tests that start
# processes (distributed ranks, the CLI) would otherwise run two threads each on two cores
# (5 min 23 s instead of 4 min 24 s for the serial suite here).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # torch may be imported already


@pytest.fixture(scope="session")
def digits():
    """The bundled digits data set (train/test split, standardised)."""
    from inspect_kit.data import load_data

    return load_data("digits")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def mlp_report():
    """The quick report of two small digits MLPs, built once for the report tests: ``a``,
    ``b``, ``report``, its page ``html`` and a ``reader`` of it. The outliers section fails on
    purpose (``n_classes=1``), so the page also shows an error section."""
    from types import SimpleNamespace

    from inspect_kit.testing import assert_untouched
    from plotting.report.build import build_report

    from .report_pages import PageReader, small_mlps

    a, b = small_mlps()
    with assert_untouched(a), assert_untouched(b):
        rep = build_report(a, "digits", second=b, quick=True, progress=False,
                           options={"landscape": {"steps": 7}, "outliers": {"n_classes": 1}})
        html = rep.html(progress=False)
    return SimpleNamespace(a=a, b=b, report=rep, html=html, reader=PageReader(html))
