"""A small seeded trainer for zoo (and any) models, with optional weight snapshots.

:func:`fit` trains in place with Adam or AdamW (mini-batches shuffled by a local
``torch.Generator(seed)``, or the full batch) or full-batch L-BFGS with strong-Wolfe line search
(pykan's optimiser settings: one epoch = one ``LBFGS.step`` of up to 20 iterations). The whole
run happens inside ``torch.random.fork_rng`` with the global RNG seeded from ``seed`` (for
dropout), so the caller's RNG state is left untouched and the same seed gives bit-identical
weights. The data are normalised by the model view's
:func:`~inspect_kit.view.batches.to_batches`, so the model is trained on exactly what the analyses
feed it (integer inputs such as ``modadd`` tokens stay integer). :func:`train_zoo` builds a zoo
model whose input and output sizes fit the data and trains it with per-model defaults.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..data import DataBundle, LossFn, load_data, resolve_loss, task_of
from ..errors import DataError, ModelSpecError, NonFiniteError, OptionError
from ..modes import model_mode
from ..progress import bar
from ..view import ModelView
from ..view.batches import concat, to_batches

Regularizer = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` did.

    ``history``: one dict per epoch with ``epoch`` (1-based), ``train_loss`` (data loss on the full
    training split after the epoch, eval mode, no regulariser), ``train_acc`` (classification),
    ``test_loss``/``test_acc`` when test data is known. ``snapshots``: detached CPU clones of the
    state dict at ``snapshot_epochs`` (epoch 0 = before training, then every ``snapshot_every``
    epochs and always the last one).
    """

    history: list[dict[str, float]]
    snapshots: list[dict[str, torch.Tensor]]
    snapshot_epochs: list[int]
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's metrics (empty dict when no epoch ran)."""
        return dict(self.history[-1]) if self.history else {}


def _tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` of any data form, as the model view reads it (integers stay integers)."""
    whole = concat(to_batches(data))
    if len(whole.args) != 1 or whole.kwargs or not isinstance(whole.args[0], torch.Tensor) \
            or whole.target is None:
        raise DataError("fit() trains on (x, y) data with one input tensor; dict batches and "
                        "data without targets need your own training loop")
    return whole.args[0], whole.target


def _split_data(data: Any, test_data: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle):
        if test_data is None and data.x_test is not None and data.y_test is not None:
            test_data = data.split("test")
        data = data.split("train")
    x, y = _tensors(data)
    return x, y, test_data


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


OPTIMIZERS = ("adam", "adamw", "lbfgs")


def _make_opt(name: str, params: list[torch.Tensor], lr: float, wd: float,
              betas: tuple[float, float]) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=betas)
    if wd:
        raise OptionError("weight_decay is only supported with optimizer='adam' or 'adamw'; add "
                          "an L2 term through regularizer= for L-BFGS")
    return torch.optim.LBFGS(params, lr=lr, max_iter=20, history_size=10,
                             line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                             tolerance_change=1e-32)


def fit(
    model: nn.Module,
    data: Any,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int | None = 64,
    optimizer: str = "adam",
    seed: int = 0,
    loss: str | LossFn | None = None,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    snapshot_every: int | None = None,
    regularizer: Regularizer | None = None,
    grid_update_every: int | None = None,
    test_data: Any = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` (any ``(x, y)`` form the model view accepts).

    Objective per step: ``loss(model(x), y) + regularizer(model, x)`` (the regulariser is
    optional). ``optimizer="adam"`` (L2 penalty ``weight_decay``, coupled to the gradient) and
    ``"adamw"`` (decoupled weight decay, Loshchilov & Hutter 2019: what grokking needs, Nanda et al.
    2023 train with AdamW, weight decay 1 and ``betas=(0.9, 0.98)``) use mini-batches of
    ``batch_size`` (None = full batch); ``"lbfgs"`` is always full batch.
    ``grid_update_every=n`` calls ``model.update_grid(X_train)`` before epochs ``0, n, 2n, ...``
    in the first half of training (KANs, as pykan's ``update_grid``), then restarts the
    optimiser, whose state refers to the old grid. A
    :class:`~inspect_kit.data.DataBundle` supplies its own test split unless ``test_data`` is given.
    """
    optimizer = optimizer.lower()
    if optimizer not in OPTIMIZERS:
        raise OptionError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if float(weight_decay) < 0:
        raise OptionError(f"weight_decay must be >= 0, got {weight_decay}")
    if len(tuple(betas)) != 2 or not all(0.0 <= float(b) < 1.0 for b in betas):
        raise OptionError(f"betas must be two numbers in [0, 1), got {betas!r}")
    betas = (float(betas[0]), float(betas[1]))
    if int(epochs) < 0:
        raise OptionError(f"epochs must be >= 0, got {epochs}")
    if snapshot_every is not None and int(snapshot_every) < 1:
        raise OptionError(f"snapshot_every must be a positive int or None, got {snapshot_every}")
    if grid_update_every is not None:
        if int(grid_update_every) < 1:
            raise OptionError(f"grid_update_every must be >= 1 or None, got {grid_update_every}")
        if not callable(getattr(model, "update_grid", None)):
            raise OptionError("grid_update_every needs a model with update_grid(x) (a zoo KAN); "
                              "pass grid_update_every=None for other models")
    if batch_size is not None and int(batch_size) < 1:
        raise OptionError(f"batch_size must be a positive int or None, got {batch_size}")
    epochs = int(epochs)
    x_all, y_all, test_data = _split_data(data, test_data)
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if ref is not None:  # data on the model's device, float inputs in the model's dtype
        x_all = x_all.to(ref.device, ref.dtype if x_all.is_floating_point() else None)
        y_all = y_all.to(ref.device)
        if test_data is not None:
            xt, yt = _tensors(test_data)
            test_data = (xt.to(ref.device, ref.dtype if xt.is_floating_point() else None),
                         yt.to(ref.device))
    loss_fn = resolve_loss(loss, y_all)
    classify = task_of(y_all) == "classification"
    n = len(x_all)
    bs = n if (batch_size is None or optimizer == "lbfgs") else min(int(batch_size), n)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise OptionError("the model has no trainable parameters (requires_grad is False everywhere)")
    history: list[dict[str, float]] = []
    snapshots: list[dict[str, torch.Tensor]] = []
    snap_epochs: list[int] = []
    t0 = time.perf_counter()

    def objective(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        out = loss_fn(model(xb), yb)
        if regularizer is not None:
            out = out + regularizer(model, xb)
        return out

    def record(epoch: int) -> None:
        row: dict[str, float] = {"epoch": epoch}
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            history.append({"epoch": epoch, "train_loss": math.nan})
            return
        tr = ModelView(model, (x_all, y_all), loss=loss_fn).evaluate()
        row["train_loss"] = tr.loss
        if classify:
            row["train_acc"] = float(tr.accuracy)
        if test_data is not None:
            te = ModelView(model, test_data, loss=loss_fn).evaluate()
            row["test_loss"] = te.loss
            if te.accuracy is not None:
                row["test_acc"] = float(te.accuracy)
        history.append(row)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        opt = _make_opt(optimizer, params, lr, weight_decay, betas)
        if snapshot_every is not None:
            snapshots.append(_state(model))
            snap_epochs.append(0)
        with model_mode(model, "train", warn=False), bar(epochs, "train", progress) as pbar:
            for epoch in range(epochs):
                if (grid_update_every is not None and epoch % int(grid_update_every) == 0
                        and epoch < epochs // 2):
                    model.update_grid(x_all)
                    opt = _make_opt(optimizer, params, lr, weight_decay, betas)
                if optimizer == "lbfgs":
                    def closure(opt: torch.optim.Optimizer = opt) -> torch.Tensor:
                        opt.zero_grad()
                        value = objective(x_all, y_all)
                        value.backward()
                        return value

                    opt.step(closure)
                else:
                    perm = torch.randperm(n, generator=gen)
                    for i in range(0, n, bs):
                        idx = perm[i : i + bs]
                        opt.zero_grad()
                        objective(x_all[idx], y_all[idx]).backward()
                        opt.step()
                record(epoch + 1)
                last = history[-1]
                if not math.isfinite(last["train_loss"]):
                    opt.zero_grad(set_to_none=True)
                    raise NonFiniteError(
                        f"training diverged at epoch {epoch + 1} (train loss "
                        f"{last['train_loss']}); lower the learning rate (lr={lr}) or check the "
                        "data")
                pbar.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k != "epoch"})
                pbar.update(1)
                if snapshot_every is not None and (
                        (epoch + 1) % int(snapshot_every) == 0 or epoch + 1 == epochs):
                    snapshots.append(_state(model))
                    snap_epochs.append(epoch + 1)
    opt.zero_grad(set_to_none=True)
    return TrainResult(history, snapshots, snap_epochs, time.perf_counter() - t0)


#: Per-model training defaults of :func:`train_zoo` (``task`` = "regression"/"classification").
DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("kan", "regression"): dict(epochs=20, optimizer="lbfgs", lr=1.0, grid_update_every=5),
    ("kan", "classification"): dict(epochs=40, optimizer="adam", lr=1e-2, batch_size=64),
    ("mlp", "regression"): dict(epochs=50, optimizer="adam", lr=3e-3, batch_size=64),
    ("mlp", "classification"): dict(epochs=20, optimizer="adam", lr=1e-3, batch_size=64),
    ("vit", "classification"): dict(epochs=30, optimizer="adam", lr=3e-3, batch_size=64),
    # full-batch AdamW with weight decay 1 and betas (0.9, 0.98), Nanda et al. 2023's recipe with
    # a larger step for CPU: the default MLP on modadd:59 (30% of the pairs) memorises by epoch
    # ~30 and generalises (test accuracy 0.99) near epoch 1350
    ("modadd", "classification"): dict(epochs=2000, optimizer="adamw", lr=2e-2, weight_decay=1.0,
                                       betas=(0.9, 0.98), batch_size=None),
}


def _as_bundle(data: Any) -> DataBundle:
    if isinstance(data, str):
        return load_data(data)
    if isinstance(data, DataBundle):
        return data
    from ..view.batches import concat, to_batches

    whole = concat(to_batches(data))
    return DataBundle("data", whole.x, whole.target)


def zoo_kwargs(name: str, bundle: DataBundle, model_kwargs: dict[str, Any] | None,
               seed: int) -> dict[str, Any]:
    """Model kwargs for zoo ``name`` on ``bundle``: sizes inferred, user kwargs checked."""
    kw = dict(model_kwargs or {})
    kw.setdefault("seed", seed)
    n_in, n_out = bundle.n_features, bundle.n_outputs
    if name == "mlp":
        sizes = kw.setdefault("sizes", [n_in, 128, 128, n_out])
        if list(sizes)[0] != n_in or list(sizes)[-1] != n_out:
            raise ModelSpecError(f"mlp sizes {list(sizes)} do not fit the data ({n_in} features, "
                                 f"{n_out} outputs); use sizes=[{n_in}, ..., {n_out}]")
    elif name == "kan":
        width = kw.setdefault("width", [n_in, 5, n_out])
        if not isinstance(width, (list, tuple)) or list(width)[0] != n_in or list(width)[-1] != n_out:
            raise ModelSpecError(f"kan width {width} does not fit the data ({n_in} features, "
                                 f"{n_out} outputs); use width=[{n_in}, ..., {n_out}]")
        kw["width"] = list(width)
    elif name == "vit":
        if bundle.image_shape is None or bundle.task != "classification":
            raise ModelSpecError(f"zoo:vit needs image classification data (like 'digits'); "
                                 f"{bundle.name!r} has no image_shape or is not classification")
        c, h, w = bundle.image_shape
        if h != w:
            raise ModelSpecError(f"zoo:vit needs square images, got {bundle.image_shape}")
        kw.setdefault("image_size", h)
        kw.setdefault("in_chans", c)
        kw.setdefault("num_classes", n_out)
        if kw["num_classes"] != n_out or kw["image_size"] != h or kw["in_chans"] != c:
            raise ModelSpecError(f"vit kwargs {kw} do not fit the data (images {bundle.image_shape},"
                                 f" {n_out} classes)")
    elif name == "modadd":
        x = bundle.x_train
        if x.is_floating_point() or x.dim() != 2 or x.shape[1] != 2 \
                or bundle.task != "classification":
            raise ModelSpecError(f"zoo:modadd needs integer pairs (a, b) with class labels (like "
                                 f"'modadd:59'); {bundle.name!r} has inputs of shape "
                                 f"{tuple(x.shape[1:])} and dtype {x.dtype}")
        p = kw.setdefault("p", n_out)
        if p != n_out or int(x.max()) >= p:
            raise ModelSpecError(f"modadd p={p} does not fit the data ({n_out} classes, tokens up "
                                 f"to {int(x.max())}); use p={n_out}")
    else:
        raise ModelSpecError(f"unknown zoo model {name!r}; known: kan, mlp, modadd, vit")
    return kw


def train_zoo(
    name: str, data: Any, *, model_kwargs: dict[str, Any] | None = None, seed: int = 0,
    **fit_kwargs: Any,
) -> tuple[nn.Module, TrainResult]:
    """Build zoo model ``name`` sized for ``data`` and train it with :func:`fit`.

    Defaults (overridden by ``fit_kwargs``): see :data:`DEFAULTS`; e.g. a KAN on a regression
    formula uses pykan's recipe (full-batch L-BFGS, 20 steps as in pykan's README, grid updates
    every 5 steps in the first half), an MLP on digits 20 epochs of Adam (lr 1e-3, batches of 64).
    """
    from . import build

    bundle = _as_bundle(data)
    kwargs = zoo_kwargs(name, bundle, model_kwargs, seed)
    model = build(name, **kwargs)
    opts = dict(DEFAULTS.get((name, bundle.task), {}))
    opts.update(fit_kwargs)
    return model, fit(model, bundle, seed=seed, **opts)
