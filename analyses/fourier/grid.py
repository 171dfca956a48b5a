"""The model on every input ``(a, b)`` of Z_p x Z_p: logits and neurons as ``(p, p, ...)`` grids.

The inputs are built from the data's own samples, so the model sees the format it was trained
on: the first sample is the template, its columns ``operands = (i, j)`` take every ``(a, b)``
(row ``a p + b`` of the grid batch), and every other column (an ``=`` token, say) keeps the
template's value, which must be the same in every sample. The forward pass is the model view's
(:meth:`inspect_kit.view.ModelView.call`, inside its model mode, no gradients), with the neuron
module's output recorded by :func:`inspect_kit.hooks.capture` (hooks removed on exit).

>>> b = grid_batch(torch.tensor([[1, 2, 7], [0, 4, 7]]), (0, 1), 3)
>>> b.n, b.args[0][:4].tolist()
(9, [[0, 0, 7], [0, 1, 7], [0, 2, 7], [1, 0, 7]])
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from inspect_kit.errors import DataError, OptionError
from inspect_kit.hooks import capture
from inspect_kit.view import ModelView
from inspect_kit.view.batches import Batch


def pairs_of(x: torch.Tensor, operands: tuple[int, int], p: int) -> torch.Tensor:
    """The ``(N, 2)`` operand columns of integer inputs ``x`` (checked to lie in ``0..p-1``)."""
    if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dim() != 2:
        raise DataError("the Fourier audit needs integer token inputs of shape (N, T) holding "
                        "(a, b); load the data with 'modadd:P'")
    if max(operands) >= x.shape[1] or min(operands) < -x.shape[1] or operands[0] == operands[1]:
        raise OptionError(f"operands={operands} must name two different columns of the "
                          f"{x.shape[1]} input columns")
    pairs = x[:, list(operands)].long()
    if int(pairs.min()) < 0 or int(pairs.max()) >= p:
        raise DataError(f"the operands hold tokens from {int(pairs.min())} to "
                        f"{int(pairs.max())}, outside 0..{p - 1}; check p or operands")
    return pairs


def grid_batch(x: torch.Tensor, operands: tuple[int, int], p: int) -> Batch:
    """A batch of all ``p^2`` inputs in the format of the data ``x`` (module docstring)."""
    others = [c for c in range(x.shape[1]) if c not in {o % x.shape[1] for o in operands}]
    if others and not bool((x[:, others] == x[:1, others]).all()):
        raise OptionError(f"input columns {others} vary between samples; the grid keeps them "
                          "fixed, so pass operands=(i, j) naming the columns of a and b")
    grid = x[:1].repeat(p * p, 1)
    idx = torch.arange(p * p, device=x.device)
    grid[:, operands[0]] = idx // p
    grid[:, operands[1]] = idx % p
    return Batch((grid,), {}, None, p * p)


def _at(t: torch.Tensor, position: int | None, what: str) -> torch.Tensor:
    if t.dim() == 2:
        return t
    if t.dim() == 3:
        return t[:, -1 if position is None else position]
    raise OptionError(f"the {what} have shape {tuple(t.shape)}; expected (B, N) or (B, T, N) "
                      "(pass position= for sequence outputs)")


@torch.no_grad()
def run_grid(view: ModelView, state: Mapping[str, torch.Tensor], batch: Batch, p: int, *,
             neurons: str | None = None, position: int | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits ``(p, p, V)`` and (with ``neurons``) activations ``(p, p, N)``, both float64."""
    with view.mode():
        if neurons is None:
            out, acts = view.call(state, batch), None
        else:
            with capture(view.model, neurons) as rec:
                out = view.call(state, batch)
            acts = _at(rec.output(neurons), position, "neurons").to(torch.float64)
            acts = acts.reshape(p, p, -1)
    logits = _at(out, position, "logits").to(torch.float64)
    if logits.shape[-1] < p:
        raise DataError(f"the model has {logits.shape[-1]} outputs, fewer than the {p} "
                        "residues; check p")
    return logits.reshape(p, p, -1), acts
