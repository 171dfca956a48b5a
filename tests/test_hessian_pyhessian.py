"""``backend="pyhessian"``: PyHessian on the same inputs, side by side, model untouched.

Truth: the exact dense Hessian. PyHessian's power iteration (tol 1e-3) is only accurate to
about 1%, so its numbers are checked loosely; ours to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analyses.hessian import dense_hessian, hessian
from inspect_kit.testing import assert_untouched


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(3)
    data = torch.randn(120, 6, generator=g), torch.randint(0, 3, (120,), generator=g)
    return model, data, dense_hessian(model, data).eigenvalues()


def test_side_by_side_and_untouched(case):
    model, data, lam = case
    model.train()  # PyHessian would flip this to eval and leave it there
    with assert_untouched(model), pytest.warns(UserWarning, match="eval mode"):
        r = hessian(model, data, top_k=3, backend="pyhessian", model_mode="train", progress=False)
    ref = r.reference
    assert "error" not in ref, ref.get("error")
    np.testing.assert_allclose(r.eigenvalues, lam[::-1][:3], rtol=1e-4)
    assert ref["eigenvalues"][0] == pytest.approx(lam[-1], rel=0.05)
    assert ref["trace"] == pytest.approx(lam.sum(), rel=0.5)
    assert ref["hvp_count"] == ref["eigen_hvp_count"] + ref["trace_hvp_count"] > 0
    assert any("density" in c for c in ref["cannot"])


def test_pyhessian_density_crashes_on_this_torch(case):
    """Documents the claim in pyhessian_backend: PyPI 0.1's density() calls torch.eig."""
    import copy

    from pyhessian import hessian as PH

    model, data, _ = case
    twin = copy.deepcopy(model)
    h = PH(twin, nn.functional.cross_entropy, data=data, cuda=False)
    with pytest.raises((RuntimeError, AttributeError)):
        h.density(iter=5, n_v=1)
