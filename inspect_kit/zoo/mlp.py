"""A plain multilayer perceptron with a choice of activation, including a learnable rational one.

``MLP(sizes=(64, 128, 128, 10))`` is ``Linear(64, 128), act, Linear(128, 128), act,
Linear(128, 10)`` in ``self.layers`` (an ``nn.Sequential``; with ``dropout > 0`` a ``Dropout``
follows each activation). Inputs are flattened to ``(B, sizes[0])``.

The "rational" activation is a safe Padé Activation Unit (Molina, Schramowski, Kersting 2019,
"Padé Activation Units: End-to-end Learning of Flexible Activation Functions in Deep Networks",
arXiv 1907.06732) of degree (3, 2), one learnable function per layer:

    R(x) = (a0 + a1 x + a2 x^2 + a3 x^3) / (1 + |b1| |x| + |b2| |x|^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModelSpecError

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "prelu", "rational")


#: Padé (3, 2) starting coefficients ``(a0..a3), (b1, b2)`` close to the named activation on
#: [-3, 3], computed once by :func:`pade_fit` (rounded to 6 digits; max error 0.115 at the kink for
#: leaky ReLU, 0.072 for |x| > 0.5; 0.002 for tanh).
PADE_INIT: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "leaky_relu": ((0.114584, 0.589165, 0.541519, 0.132436), (0.207171, 0.206588)),
    "tanh": ((0.0, 1.01255, 0.0, 0.0433153), (0.0438965, 0.343151)),
}


def pade_fit(target: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Padé (3, 2) coefficients close to ``target`` on [-3, 3] (deterministic, float64).

    Linearised least squares ``P(x) - f(x) (c1 |x| + c2 x^2) = f(x)`` gives a start, then 200
    L-BFGS iterations minimise the true squared error of ``P/Q``: the same "approximate a known
    activation first" start as Molina et al. (who tabulate theirs). Takes ~3 s, so
    :data:`PADE_INIT` holds its output.
    """
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    f = torch.where(x >= 0, x, 0.01 * x) if target == "leaky_relu" else torch.tanh(x)
    A = torch.stack([torch.ones_like(x), x, x**2, x**3, -f * x.abs(), -f * x**2], dim=1)
    sol = torch.linalg.lstsq(A, f.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    theta = sol.clone().requires_grad_(True)

    def err() -> torch.Tensor:
        a, b = theta[:4], theta[4:].abs()
        num = a[0] + x * (a[1] + x * (a[2] + x * a[3]))
        return ((num / (1 + x.abs() * (b[0] + x.abs() * b[1])) - f) ** 2).mean()

    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=200, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = err()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    t = theta.detach()
    return tuple(t[:4].tolist()), tuple(t[4:].abs().tolist())


class Rational(nn.Module):
    """Safe Padé activation ``R(x) = P3(x) / (1 + |b1||x| + |b2||x|^2)`` (Molina et al. 2019).

    ``init="leaky_relu"`` (slope 0.01) or ``"tanh"`` picks the starting shape
    (:data:`PADE_INIT`; max error on [-3, 3]: leaky ReLU 0.115 at the kink, 0.072
    for |x| > 0.5; tanh 0.002).
    Parameters ``numerator (4,)`` and ``denominator (2,)``.
    """

    def __init__(self, init: str = "leaky_relu") -> None:
        super().__init__()
        if init not in ("leaky_relu", "tanh"):
            raise ModelSpecError(f"Rational init must be 'leaky_relu' or 'tanh', got {init!r}")
        a, b = PADE_INIT[init]
        self.init = init
        self.numerator = nn.Parameter(torch.tensor(list(a), dtype=torch.float32))
        self.denominator = nn.Parameter(torch.tensor(list(b), dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"degree=(3, 2), init={self.init!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.numerator, self.denominator.abs()
        num = a[0] + x * (a[1] + x * (a[2] + x * a[3]))
        ax = x.abs()
        return num / (1 + ax * (b[0] + ax * b[1]))


def make_activation(name: str) -> nn.Module:
    """The activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    table = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
             "prelu": nn.PReLU, "rational": Rational}
    if name not in table:
        raise ModelSpecError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return table[name]()


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` (no activation on the output).

    Linear weights and biases get PyTorch's default ``nn.Linear`` initialisation
    (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) drawn from a local ``torch.Generator(seed)``; the
    global RNG is left as it was.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (64, 128, 128, 10),
        activation: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if (isinstance(sizes, (str, bytes)) or len(sizes) < 2
                or not all(isinstance(s, int) and s >= 1 for s in sizes)):
            raise ModelSpecError(f"MLP sizes must be >= 2 positive ints like (64, 128, 10), "
                                 f"got {sizes!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ModelSpecError(f"dropout must be in [0, 1), got {dropout!r}")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        mods: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global RNG
            for i in range(len(self.sizes) - 1):
                mods.append(nn.Linear(self.sizes[i], self.sizes[i + 1], bias=bias))
                if i < len(self.sizes) - 2:
                    mods.append(make_activation(activation))
                    if dropout > 0:
                        mods.append(nn.Dropout(float(dropout)))
        self.layers = nn.Sequential(*mods)
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    bound = 1.0 / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=g)
                    if m.bias is not None:
                        m.bias.uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.sizes[0]:
            raise ModelSpecError(f"MLP with sizes {self.sizes} expects {self.sizes[0]} input "
                                 f"features, got {x.shape[1]}")
        return self.layers(x)
