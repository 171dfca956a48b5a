"""Training in a random subspace: ``theta = theta_0 + P z``, only ``z`` learns.

Li, Farkhoor, Liu & Yosinski 2018 ("Measuring the Intrinsic Dimension of Objective Landscapes",
ICLR) freeze the initial parameters ``theta_0`` (``D`` numbers) and a random projection
``P: R^d -> R^D`` and optimise only ``z`` (``d`` numbers, starting at 0). :func:`fit_subspace`
does this functionally: the model is a pure function of ``theta`` through a
:class:`~inspect_kit.view.ModelView` (``torch.func.functional_call`` on separate tensors), so
the user's model is never edited. ``project`` is any callable ``z -> P z`` (the projections of
:mod:`analyses.intrinsic_dimension.projection`); ``project=None`` trains every parameter
(``z = theta - theta_0``, ``d = D``), the full-model baseline on the same footing.

Mini-batches of ``batch_size`` (None = full batch) are drawn by ``torch.Generator(seed)``; the
run happens inside ``torch.random.fork_rng`` seeded from ``seed`` (for dropout), so the same
seed gives the same numbers and the caller's RNG is untouched. After each epoch the loss and
accuracy on the training data and on ``eval_view`` (e.g. the test split) are recorded.

>>> import torch
>>> from torch import nn
>>> from inspect_kit.view import ModelView
>>> x = torch.randn(64, 2)
>>> y = (x[:, 0] > 0).long()
>>> view = ModelView(nn.Linear(2, 2), (x, y))
>>> run = fit_subspace(view, None, epochs=30, lr=0.1, batch_size=None, progress=False)
>>> run.d, run.final["train_acc"] > 0.9
(6, True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from ..errors import NonFiniteError, OptionError
from ..progress import bar
from ..view.batches import concat

Projection = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class SubspaceFit:
    """One subspace run: ``history`` has one dict per epoch (``epoch``, ``train_loss``,
    ``train_acc``, ``eval_loss``, ``eval_acc``; accuracies for classification), ``z`` the
    learned coordinates, ``theta`` the final flat parameters."""

    d: int
    history: list[dict[str, float]]
    z: torch.Tensor
    theta: torch.Tensor
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        return dict(self.history[-1]) if self.history else {}


def _record(view: Any, eval_view: Any, theta: torch.Tensor, epoch: int) -> dict[str, float]:
    row: dict[str, float] = {"epoch": epoch}
    for prefix, v in (("train", view), ("eval", eval_view)):
        if v is None:
            continue
        ev = v.evaluate(theta)
        row[f"{prefix}_loss"] = ev.loss
        if ev.accuracy is not None:
            row[f"{prefix}_acc"] = float(ev.accuracy)
    return row


def fit_subspace(
    view: Any,
    project: Projection | None,
    d: int | None = None,
    *,
    eval_view: Any = None,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int | None = 64,
    optimizer: str = "adam",
    seed: int = 0,
    progress: bool | None = None,
) -> SubspaceFit:
    """Train ``z`` in ``theta = view.theta + project(z)`` (see the module docstring).

    ``d`` is the length of ``z`` (required with a projection; ``view.n`` without one).
    ``optimizer`` is "adam" or "sgd" (plain, learning rate ``lr``).
    """
    if optimizer not in ("adam", "sgd"):
        raise OptionError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if int(epochs) < 1:
        raise OptionError(f"epochs must be >= 1, got {epochs}")
    if batch_size is not None and int(batch_size) < 1:
        raise OptionError(f"batch_size must be a positive integer or None, got {batch_size}")
    if project is None:
        d = view.n
    elif d is None or int(d) < 1:
        raise OptionError(f"d (the length of z) must be a positive integer, got {d!r}")
    d = int(d)
    whole = concat(list(view.batches))
    n = whole.n
    bs = n if batch_size is None else min(int(batch_size), n)
    theta0 = view.theta.detach()
    z = torch.zeros(d, dtype=view.dtype, device=view.device, requires_grad=True)

    def theta_of(zz: torch.Tensor) -> torch.Tensor:
        return theta0 + (zz if project is None else project(zz))

    opt = (torch.optim.Adam([z], lr=lr) if optimizer == "adam"
           else torch.optim.SGD([z], lr=lr))
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        with bar(int(epochs), desc=f"subspace d={d}", progress=progress) as pbar:
            for epoch in range(int(epochs)):
                perm = torch.randperm(n, generator=gen)
                with torch.enable_grad(), view.mode():
                    for i in range(0, n, bs):
                        b = whole.take(perm[i:i + bs])
                        opt.zero_grad()
                        loss = view.batch_loss(view.full_state(theta_of(z)), b)
                        loss.backward()
                        opt.step()
                with torch.no_grad():
                    row = _record(view, eval_view, theta_of(z), epoch + 1)
                if row["train_loss"] != row["train_loss"] or abs(row["train_loss"]) == float("inf"):
                    raise NonFiniteError(f"subspace training (d={d}) diverged at epoch {epoch + 1}"
                                         f" (train loss {row['train_loss']}); lower lr={lr}")
                history.append(row)
                pbar.update(1)
    with torch.no_grad():
        theta = theta_of(z).detach()
    return SubspaceFit(d, history, z.detach(), theta, time.perf_counter() - t0)
