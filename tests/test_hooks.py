import pytest
import torch
from torch import nn

from inspect_kit.errors import OptionError
from inspect_kit.hooks import capture
from inspect_kit.testing import assert_untouched


class Reuse(nn.Module):
    """Uses one Linear twice in a forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.lin(torch.tanh(self.lin(x)))))


def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_records_every_call_of_a_reused_module():
    net = Reuse()
    x = torch.randn(4, 3)
    with capture(net, "lin", inputs=True) as rec:
        net(x)
    assert len(rec["lin"]) == 2
    first, second = rec["lin"]
    torch.testing.assert_close(first.inputs[0], x)
    torch.testing.assert_close(first.output, net.lin(x))
    torch.testing.assert_close(second.inputs[0], torch.tanh(net.lin(x)))
    assert _all_hooks(net) == 0


def test_hooks_removed_when_body_raises():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with assert_untouched(net):
        with pytest.raises(RuntimeError, match="boom"):
            with capture(net, nn.Linear):
                net(torch.randn(1, 2))
                raise RuntimeError("boom")
    assert _all_hooks(net) == 0


@pytest.mark.parametrize(
    "select, expected",
    [
        ("0", ["0"]),
        ("*", ["0", "1", "2"]),
        (["0", "2"], ["0", "2"]),
        (nn.Linear, ["0", "2"]),
        (lambda n, m: isinstance(m, nn.ReLU), ["1"]),
    ],
)
def test_selection_forms(select, expected):
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with capture(net, select) as rec:
        net(torch.randn(3, 2))
    assert rec.names == expected
    assert all(len(rec[n]) == 1 for n in expected)


def test_empty_selection_is_a_clear_error():
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(OptionError, match="matched no module"):
        with capture(net, "nope"):
            pass
    assert _all_hooks(net) == 0


def test_detach_and_grad_modes():
    net = nn.Sequential(nn.Linear(2, 2))
    x = torch.randn(3, 2)
    with capture(net, "0") as rec:
        net(x)
    assert not rec.output("0").requires_grad
    with capture(net, "0", detach=False, device=None) as rec:
        net(x)
    out = rec.output("0")
    assert out.requires_grad
    out.sum().backward()  # the graph is intact
    assert net[0].weight.grad is not None
