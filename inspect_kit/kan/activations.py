"""Univariate functions of non-KAN models, sampled like KAN edges (:class:`EdgeSamples`).

:func:`sample_activations` finds the learnable activations of a model and samples each one:

* ``nn.PReLU`` (one curve per channel when ``num_parameters > 1``; channel axis 1);
* the zoo's Fourier-KArAt attention (any module with a ``function(head, s)`` method and ``heads``):
  one curve per head, over the range of the scores the module received;
* any other parameterised, childless, elementwise module (e.g. the zoo MLP's ``Rational``):
  one curve, evaluated by calling the module on the grid.

The observed inputs are recorded with forward hooks (``inspect_kit.hooks.capture``, removed on
exit) while the model runs in eval mode on the data passed. Edge ``index`` is ``(module number,
channel or head, 0)`` and ``labels`` name the module.

:func:`partial_dependence` gives per-input curves of any model: input ``i`` varies over its
quantile range with every other input at its median; edge ``(0, k, i)`` is output ``k`` as a
function of input ``i`` (``x_obs``/``y_obs``: the same on the observed values of input ``i``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import OptionError, UnsupportedModelError
from ..hooks import capture
from ..modes import model_mode
from .sampling import EdgeSamples, data_tensors

_NOT_ACTIVATIONS = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.LayerNorm,
                    nn.GroupNorm, nn.Embedding, nn.MultiheadAttention, nn.Bilinear)


def learnable_activations(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(name, module, kind)`` of every learnable activation; kind is "prelu", "heads" or "elementwise"."""
    found = []
    for name, m in model.named_modules():
        if isinstance(m, nn.PReLU):
            found.append((name, m, "prelu"))
        elif callable(getattr(m, "function", None)) and isinstance(getattr(m, "heads", None), int):
            found.append((name, m, "heads"))
        elif (name and not list(m.children()) and list(m.parameters(recurse=False))
              and not isinstance(m, _NOT_ACTIVATIONS) and not hasattr(m, "grid")):
            found.append((name, m, "elementwise"))
    return found


def _elementwise_ok(m: nn.Module, dtype: torch.dtype) -> bool:
    try:
        with torch.no_grad():
            probe = torch.linspace(-1, 1, 7, dtype=dtype)
            return tuple(m(probe).shape) == (7,)
    except Exception:  # noqa: BLE001 - not callable on a 1-D tensor: not an elementwise activation
        return False


def _columns(kind: str, m: nn.Module, inp: torch.Tensor) -> list[torch.Tensor]:
    """The observed values of each channel / head / the whole module, flattened."""
    if kind == "prelu" and m.num_parameters > 1:
        return [inp.select(1, c).reshape(-1) for c in range(m.num_parameters)]
    if kind == "heads":
        return [inp.select(1, h).reshape(-1) for h in range(m.heads)]
    return [inp.reshape(-1)]


def _curve(kind: str, m: nn.Module, c: int, x: torch.Tensor) -> torch.Tensor:
    if kind == "prelu":
        w = m.weight.detach()[c if m.num_parameters > 1 else 0].to(x.dtype)
        return torch.where(x >= 0, x, w * x)
    if kind == "heads":
        return m.function(c, x)
    return m(x)


def _thin(v: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    if len(v) <= n:
        return v
    return v[torch.randperm(len(v), generator=gen)[:n].sort().values]


def sample_activations(
    model: nn.Module,
    data: Any,
    *,
    n_points: int = 201,
    quantiles: tuple[float, float] = (0.0, 1.0),
    samples: int | None = 512,
    max_obs: int = 2000,
    split: str = "train",
    seed: int = 0,
) -> EdgeSamples:
    """Sample every learnable activation of ``model`` over the inputs it sees on ``data``.

    ``samples`` data points are forwarded; ``max_obs`` observed values per curve are kept
    (seeded subsample; all curves keep the same number, the smallest available).
    """
    q_lo, q_hi = (float(q) for q in quantiles)
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise OptionError(f"quantiles must satisfy 0 <= q_lo < q_hi <= 1, got {quantiles}")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    acts = [(n, m, k) for n, m, k in learnable_activations(model)
            if k != "elementwise" or _elementwise_ok(m, dtype)]
    if not acts:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no learnable activation (PReLU, a Fourier-KArAt attention "
            "function, or a parameterised elementwise module); use partial_dependence for MLP curves")
    X, _ = data_tensors(data, split=split, samples=samples, seed=seed)
    names = [n for n, _, _ in acts]
    with torch.no_grad(), model_mode(model, "eval", restore_attributes=True), \
            capture(model, names, inputs=True, outputs=False) as rec:
        model(X.to(dtype))
    cols = {n: [torch.cat(v) for v in zip(*(_columns(k, m, c.inputs[0]) for c in rec[n]))]
            for n, m, k in acts}
    n_obs = min(max_obs, min(len(v) for vs in cols.values() for v in vs))
    gen = torch.Generator().manual_seed(int(seed))
    t = torch.linspace(0.0, 1.0, int(n_points), dtype=dtype)
    index, labels, xs, ys, xo, yo, observed, shapes = [], [], [], [], [], [], [], []
    with torch.no_grad():
        for a, (name, m, kind) in enumerate(acts):
            per = []
            for c, v in enumerate(cols[name]):
                q = torch.quantile(v.double(), torch.tensor([q_lo, q_hi], dtype=torch.float64)).to(dtype)
                grid = q[0] + (q[1] - q[0]) * t
                obs = _thin(v, n_obs, gen).to(dtype)
                index.append((a, c, 0))
                unit = {"prelu": "channel", "heads": "head"}.get(kind)
                suffix = f" {unit} {c}" if len(cols[name]) > 1 else ""
                labels.append(f"{name} ({type(m).__name__}){suffix}")
                xs.append(grid)
                ys.append(_curve(kind, m, c, grid))
                xo.append(obs)
                yo.append(_curve(kind, m, c, obs))
                per.append(obs)
            observed.append(torch.stack(per, dim=1))
            shapes.append((len(per), 1))
    E = len(index)
    return EdgeSamples(
        family="activation", widths=[], edge_shapes=shapes,
        subnode_owner=[list(range(s[0])) for s in shapes], input_owner=[[0] for _ in shapes],
        index=index, x=torch.stack(xs), y=torch.stack(ys), masked=torch.zeros(E, dtype=torch.bool),
        x_obs=torch.stack(xo), y_obs=torch.stack(yo), observed=observed,
        grid_range=torch.tensor([[-float("inf"), float("inf")]] * E, dtype=dtype),
        quantiles=(q_lo, q_hi), n_samples=len(X), labels=labels,
        note=f"learnable activations on {len(X)} samples of the {split} split; inputs recorded with hooks",
    )


def partial_dependence(
    model: nn.Module,
    data: Any,
    *,
    n_points: int = 201,
    quantiles: tuple[float, float] = (0.0, 1.0),
    inputs: list[int] | None = None,
    samples: int | None = 1000,
    split: str = "train",
    seed: int = 0,
) -> EdgeSamples:
    """Per-input curves: output ``k`` as input ``i`` varies, the other inputs at their medians.

    ``inputs`` restricts the varied inputs (default all); edges ``(0, k, i)`` for each output k
    (with a subset, ``edge_shapes`` still spans all inputs and only the chosen ones have rows).
    """
    X, _ = data_tensors(data, split=split, samples=samples, seed=seed)
    shape = tuple(X.shape[1:])
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    flat = X.reshape(len(X), -1).to(dtype)
    d = flat.shape[1]
    chosen = list(range(d)) if inputs is None else [int(i) for i in inputs]
    if not chosen or any(not 0 <= i < d for i in chosen):
        raise OptionError(f"inputs must be indices in [0, {d}), got {inputs}")
    med = flat.median(0).values
    q = torch.quantile(flat.double(), torch.tensor(list(quantiles), dtype=torch.float64), dim=0).to(dtype)
    t = torch.linspace(0.0, 1.0, int(n_points), dtype=dtype)

    def run(col: int, values: torch.Tensor) -> torch.Tensor:
        z = med.expand(len(values), d).clone()
        z[:, col] = values
        out = model(z.reshape(len(values), *shape))
        return out.reshape(len(values), -1)

    index, xs, ys, xo, yo = [], [], [], [], []
    with torch.no_grad(), model_mode(model, "eval", restore_attributes=True):
        n_out = run(chosen[0], flat[:1, chosen[0]]).shape[1]
        for i in chosen:
            grid = q[0, i] + (q[1, i] - q[0, i]) * t
            yd, yob = run(i, grid), run(i, flat[:, i])
            for k in range(n_out):
                index.append((0, k, i))
                xs.append(grid)
                ys.append(yd[:, k])
                xo.append(flat[:, i])
                yo.append(yob[:, k])
    E = len(index)
    order = sorted(range(E), key=lambda r: (index[r][1], index[r][2]))
    pick = lambda v: torch.stack([v[r] for r in order])  # noqa: E731
    return EdgeSamples(
        family="partial_dependence", widths=[d, n_out], edge_shapes=[(n_out, d)],
        subnode_owner=[list(range(n_out))], input_owner=[list(range(d))],
        index=[index[r] for r in order], x=pick(xs), y=pick(ys), masked=torch.zeros(E, dtype=torch.bool),
        x_obs=pick(xo), y_obs=pick(yo), observed=[flat],
        grid_range=torch.tensor([[-float("inf"), float("inf")]] * E, dtype=dtype),
        quantiles=tuple(float(v) for v in quantiles), n_samples=len(X),
        note=(f"partial dependence on {len(X)} samples of the {split} split: input i over its "
              f"{tuple(quantiles)} quantile range, the other inputs at their medians"),
    )
