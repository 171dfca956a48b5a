"""A ``module:callable`` data factory used by test_data.py (same draws as the test's own)."""

import torch


def make():
    torch.manual_seed(0)
    return torch.randn(30, 3), torch.randint(0, 2, (30,))
