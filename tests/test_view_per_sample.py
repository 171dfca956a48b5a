"""The view's per-sample Jacobian against the batch Jacobian (``jacrev`` of the batch output):
keyword and integer inputs, a tensor input without a sample axis, train mode with BatchNorm
(batch statistics couple the samples, so the batch Jacobian is used), and the transformer
encoder's forward-mode products inside ``autodiff_attention`` (flags restored afterwards)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from inspect_kit.testing import assert_untouched
from inspect_kit.view import ModelView
from inspect_kit.view.jacobian import (
    autodiff_attention,
    jacobian,
    per_sample_jacobian,
    safe_jvp,
)


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor
                ) -> torch.Tensor:
        h = (self.emb(input_ids) * mask[..., None]).sum(1) * scale
        return self.out(torch.tanh(h))


def test_keyword_integer_and_shared_inputs():
    torch.manual_seed(0)
    net = Tokens()
    g = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(0, 11, (6, 5), generator=g),
             "mask": torch.randint(0, 2, (6, 5), generator=g).double(),
             "scale": torch.tensor([0.5, 2.0, 1.0, 1.0]),  # no sample axis: shared
             "labels": torch.zeros(6, dtype=torch.long)}
    view = ModelView(net, [batch], dtype="float64")
    b = view.batches[0]
    with assert_untouched(net):
        J = per_sample_jacobian(view, b)
    assert J.shape == (6, 3, view.n)
    torch.testing.assert_close(J, jacobian(view, b), rtol=1e-12, atol=1e-14)


def test_train_mode_with_batchnorm_uses_the_batch_jacobian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    view = ModelView(net, (x,), dtype="float64", model_mode="train")
    with assert_untouched(net):
        J = per_sample_jacobian(view, view.batches[0])
    twin = copy.deepcopy(net).double().train()  # autograd on the module, one row at a time
    z = twin(x.double())
    truth = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        z[i, a], list(twin.parameters()), retain_graph=True)]) for i in range(5)
        for a in range(2)]).reshape(5, 2, -1)
    assert J.shape == truth.shape == (5, 2, view.n)
    torch.testing.assert_close(J, truth, rtol=1e-10, atol=1e-12)


def test_encoder_jvp_inside_the_context_and_flags_restored():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    net = nn.Sequential(nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)).eval()
    view = ModelView(net, (torch.randn(3, 4, 8),), dtype="float64")
    b = view.batches[0]
    before = torch.backends.mha.get_fastpath_enabled()
    V = torch.randn(2, view.n, dtype=torch.float64)
    with assert_untouched(net):
        out = safe_jvp(view, V, b)
    assert torch.backends.mha.get_fastpath_enabled() == before
    with autodiff_attention():
        J = jacobian(view, b)  # (3, 4, 8, n)
    assert out.shape == (2, 3, 4, 8)
    torch.testing.assert_close(out, torch.einsum("btdn,kn->kbtd", J, V), rtol=1e-10,
                               atol=1e-12)
