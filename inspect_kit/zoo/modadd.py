"""Networks for modular addition ``(a, b) -> (a + b) mod p``, the grokking testbed.

Input: integer tokens of shape ``(B, 2)`` (``a`` and ``b`` in ``0..p-1``); output: logits over
the ``p`` residues, shape ``(B, p)``. Two architectures share the attribute names the Fourier
audit (:mod:`analyses.fourier`) reads, listed in ``model.fourier_points``:

* ``embed``: ``nn.Embedding`` whose weight ``W_E`` has one row per token (the first ``p`` rows
  are the residues);
* ``act``: the activation module whose output are the neurons (``(B, width)``; the transformer's
  MLP neurons ``(B, 3, d_mlp)`` are read at the last position);
* ``unembed``: ``nn.Linear(width or d_model, p, bias=False)`` whose weight is ``W_U``.

``architecture="mlp"`` (Gromov 2023, "Grokking modular arithmetic", arXiv 2301.02679, with a
shared learned embedding in place of one-hot inputs)::

    logits = W_U act(W_in [W_E[a]; W_E[b]] + b_in)

``architecture="transformer"`` (Nanda, Chan, Lieberum, Smith, Steinhardt 2023, "Progress
measures for grokking via mechanistic interpretability", arXiv 2301.05217): one layer, no
LayerNorm, tokens ``(a, b, =)`` (the ``=`` token, index ``p``, is appended by the model), learned
positional embeddings, ``heads`` attention heads, an MLP of ``4 d_model`` ReLU neurons, and the
logits read at the last position.

Initialisation draws from a local ``torch.Generator(seed)``: the global RNG is left as it was.

>>> import torch
>>> net = ModAddNet(p=7, d=8, width=16, seed=0)
>>> net(torch.tensor([[1, 2], [6, 6]])).shape
torch.Size([2, 7])
>>> net.fourier_points["embedding"], tuple(net.embed.weight.shape)
('embed', (7, 8))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DataError, ModelSpecError

ARCHITECTURES = ("mlp", "transformer")
ACTIVATIONS = ("relu", "gelu", "quadratic")


class Quadratic(nn.Module):
    """``x -> x**2``, the activation of Gromov (2023)'s analytic solution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ModelSpecError(f"modadd activation must be one of {ACTIVATIONS}, got {name!r}")
    return {"relu": nn.ReLU, "gelu": nn.GELU, "quadratic": Quadratic}[name]()


class _Attention(nn.Module):
    """Multi-head causal self-attention without biases (Nanda et al.'s one-layer model)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        if d % heads:
            raise ModelSpecError(f"d={d} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, d))


class ModAddNet(nn.Module):
    """A network for ``(a + b) mod p`` (see the module docstring for both architectures).

    Args:
        p: the modulus (number of residues and of output classes).
        architecture: ``"mlp"`` (default, cheap on CPU) or ``"transformer"``.
        d: embedding width (the transformer's ``d_model``).
        width: hidden neurons of the MLP architecture (the transformer uses ``4 d``).
        activation: ``relu``, ``gelu`` or ``quadratic`` (MLP architecture; the transformer uses
            ReLU as Nanda et al.).
        heads: attention heads (transformer).
        seed: seed of the initialisation.
    """

    def __init__(self, p: int = 59, architecture: str = "mlp", d: int = 32, width: int = 128,
                 activation: str = "relu", heads: int = 4, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(p, int) or p < 3:
            raise ModelSpecError(f"modadd p must be an int >= 3, got {p!r}")
        if architecture not in ARCHITECTURES:
            raise ModelSpecError(f"modadd architecture must be one of {ARCHITECTURES}, got "
                                 f"{architecture!r}")
        if min(d, width, heads) < 1:
            raise ModelSpecError(f"modadd d, width and heads must be >= 1, got {d}, {width}, "
                                 f"{heads}")
        self.p, self.architecture = int(p), architecture
        tokens = p + 1 if architecture == "transformer" else p
        with torch.random.fork_rng(devices=[]):  # the modules' own init draws from the global RNG
            self.embed = nn.Embedding(tokens, d)
            if architecture == "mlp":
                self.hidden = nn.Linear(2 * d, width)
                self.act = _activation(activation)
                self.unembed = nn.Linear(width, p, bias=False)
            else:
                self.pos = nn.Parameter(torch.zeros(3, d))
                self.attn = _Attention(d, heads)
                self.hidden = nn.Linear(d, 4 * d)
                self.act = nn.ReLU()
                self.mlp_out = nn.Linear(4 * d, d)
                self.unembed = nn.Linear(d, p, bias=False)
        #: where the Fourier audit finds the embedding, the neurons and the unembedding
        self.fourier_points = {"embedding": "embed", "neurons": "act", "unembedding": "unembed",
                               "position": -1 if architecture == "transformer" else None}
        self._init(seed)

    def _init(self, seed: int) -> None:
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for name, t in self.named_parameters():
                fan_in = t.shape[-1] if t.dim() > 1 else len(t)
                if name.endswith("bias"):
                    t.zero_()
                elif name in ("embed.weight", "pos"):
                    t.normal_(0.0, 1.0 / math.sqrt(t.shape[-1]), generator=g)
                else:
                    t.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != 2:
            raise DataError(f"ModAddNet expects tokens of shape (B, 2), got {tuple(x.shape)}")
        if x.is_floating_point():
            raise DataError("ModAddNet expects integer tokens (a, b); load the data with "
                            "'modadd:p' or pass a long tensor")
        if self.architecture == "mlp":
            h = self.act(self.hidden(self.embed(x).flatten(1)))
            return self.unembed(h)
        eq = torch.full((len(x), 1), self.p, dtype=x.dtype, device=x.device)
        r = self.embed(torch.cat([x, eq], 1)) + self.pos
        r = r + self.attn(r)
        r = r + self.mlp_out(self.act(self.hidden(r)))
        return self.unembed(r[:, -1])
