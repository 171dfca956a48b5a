"""Requests are bounded before work starts (memory, time, option ranges), and NaN is named."""

import pytest
import torch
from torch import nn

from analyses.hessian import budget
from analyses.hessian.api import hessian
from analyses.landscape.api import landscape
from analyses.lmc.api import MAX_STEPS, lmc
from inspect_kit import limits, preflight
from inspect_kit.errors import NonFiniteError, OptionError, SizeLimitError
from inspect_kit.testing import assert_untouched


@pytest.fixture()
def small():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    return net, (torch.randn(40, 6), torch.randint(0, 3, (40,)))


def _products(n, top_k=0, trace=True, trace_budget=100, trace_method="hutch++", density=False,
              density_probes=10, density_steps=100, density_deflate=20):
    return budget.products(n, top_k=top_k, max_steps=None,
                           trace_budget=trace_budget if trace else 0, trace_method=trace_method,
                           density_probes=density_probes if density else None,
                           density_steps=density_steps, density_deflate=density_deflate,
                           block_sizes=[])


def test_the_count_is_the_products_that_run(small):
    net, data = small
    n = sum(p.numel() for p in net.parameters())  # 83
    for kw in (dict(top_k=0, trace=True, trace_budget=30),
               dict(top_k=0, trace=True, trace_budget=30, trace_method="hutchinson"),
               dict(top_k=0, trace=True, trace_budget=200),  # n <= budget: the exact trace
               dict(top_k=0, trace=False, density=True, density_probes=3, density_steps=20,
                    density_deflate=0)):
        with assert_untouched(net):
            res = hessian(net, data, progress=False, **kw)
        assert _products(n, **kw) == res.hvp_count  # fixed-budget estimators: exactly
    with assert_untouched(net):
        res = hessian(net, data, top_k=3, trace=False, progress=False)
    assert 0 < res.hvp_count <= _products(n, top_k=3, trace=False)  # Lanczos may stop early


def test_top_k_above_the_parameter_count_is_refused(small):
    net, data = small
    for method in ("iterative", "exact"):
        with assert_untouched(net), pytest.raises(OptionError, match="top_k=84 is more than the 83"):
            hessian(net, data, top_k=84, method=method, progress=False)


def test_memory_budgets_honour_the_process_limit(small, monkeypatch):
    """The estimators' default memory budget comes from limits.available_memory (which lowers
    MemAvailable by ulimit -v): with 10 kB available, a density request is refused."""
    from inspect_kit import memory

    net, data = small
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000)
    assert memory.available_bytes() == 10_000
    with assert_untouched(net), pytest.raises(SizeLimitError):
        hessian(net, data, top_k=0, trace=False, density=True, density_probes=50,
                progress=False)


@pytest.mark.parametrize("which", ["hessian", "landscape", "lmc"])
def test_time_bound_and_force(small, monkeypatch, which):
    net, data = small
    run = {"hessian": lambda **k: hessian(net, data, top_k=1, trace=False, progress=False, **k),
           "landscape": lambda **k: landscape(net, data, dims=1, steps=5, progress=False, **k),
           "lmc": lambda **k: lmc(net, net, data, steps=3, progress=False, **k)}[which]
    monkeypatch.setattr(limits, "TIME_LIMIT", 1e-9)
    with assert_untouched(net), pytest.raises(SizeLimitError, match="would take about"):
        run()
    with assert_untouched(net):
        assert run(force=True) is not None


def test_grid_and_path_sizes_are_refused_before_allocation(small):
    net, data = small
    with assert_untouched(net), pytest.raises(OptionError, match="use at most steps=999"):
        landscape(net, data, dims=2, steps=1001, progress=False)
    with assert_untouched(net), pytest.raises(OptionError, match="points on a path"):
        lmc(net, net, data, steps=MAX_STEPS + 1, progress=False)


def test_a_nan_hessian_vector_product_is_named():
    class SqrtAbs(nn.Module):  # loss finite at w = 0, second derivative of sqrt(w^2) is not
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return x + torch.sqrt(self.w ** 2)

    net = SqrtAbs()
    data = (torch.randn(8, 3), torch.randn(8, 3))
    with assert_untouched(net), pytest.raises(NonFiniteError, match="(?i)hessian-vector product"):
        hessian(net, data, top_k=1, trace=False, progress=False)


def test_lmc_names_the_split_and_t_of_a_nan_on_the_path(small):
    net, data = small
    far = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        far[2].weight.fill_(3e38)  # finite, but the logits overflow float32
    with assert_untouched(net), assert_untouched(far), \
            pytest.raises(NonFiniteError, match=r"at t=\S+ on the interpolation path \(split"):
        lmc(net, far, data, steps=5, progress=False)


def test_training_size_check_uses_the_shape_only_build(monkeypatch):
    from inspect_kit.commands.train import _check_size
    from inspect_kit.data import load_data

    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 20)
    _check_size("mlp", load_data("wine"), {"sizes": [13, 8, 3]}, 0)  # 1 MiB is plenty
    with pytest.raises(SizeLimitError, match=r"40,003,600,003 parameters"):
        _check_size("mlp", load_data("wine"), {"sizes": [13, 200000, 200000, 3]}, 0)
    assert preflight.declared_size(nn.Linear(2, 3)) == (9, 36)
