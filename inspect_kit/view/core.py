"""The model as a pure function of a flat parameter vector over fixed batches.

A :class:`ModelView` is built once per analysis from ``(model, data, options)`` and is the only
place where a model meets data. For the selected parameters ``theta`` (an include rule over the
trainable ones) and batches ``b`` of ``n_b`` samples (``N = sum_b n_b``) it computes

    L(theta) = sum_b (n_b / N) loss(f(theta; x_b), y_b),

its gradient, Hessian-vector products for a block of vectors (:mod:`.hvp`), and losses at many
points ``origin + sum_k c_k d_k`` with the fast engines of :mod:`.points`. The model is evaluated
by ``torch.func.functional_call`` on separate tensors, inside :func:`~inspect_kit.modes.model_mode`,
so it is never edited: parameters, buffers, flags, ``.grad`` and hooks are as they were.

What the view owns, in one place:

* **parameters**: ``include`` (glob(s) or predicate) over the trainable parameters; the others
  and every buffer are fixed inputs of the function;
* **dtype and device**: floating parameters *and buffers* are cast together (BatchNorm works in
  float64), inputs move to the device, integer inputs (token ids) stay integer; the model itself
  is never moved;
* **model mode** ("eval", "train" or None); in train mode every forward gets fresh copies of the
  buffers, so running statistics are never written back;
* **the loss** (:mod:`inspect_kit.losses`; default by task: cross-entropy for integer targets,
  next-token cross-entropy for causal LMs, MSE otherwise; ``"model"``: the model's own loss
  from ``labels=``) and the output: tensors, tuples and HuggingFace outputs are unwrapped
  (:func:`.batches.unwrap`), and ``forward(call, batch) -> prediction`` replaces the call for
  anything else;
* **the batches** (:mod:`.batches`): tuples or dicts, a seeded draw of ``samples``, weights
  ``n_b / N``.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
>>> view = ModelView(net, (torch.randn(20, 3), torch.randint(0, 2, (20,))), dtype="float64")
>>> view.n, view.theta.dtype
(26, torch.float64)
>>> abs(view.loss() - view.loss(view.theta)) < 1e-12
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import DataError, NonFiniteError, OptionError
from ..losses import LossFn, resolve_loss, task_of
from ..modes import model_mode as mode_ctx
from ..params import check_finite, named_params
from .batches import Batch, cast, to_batches, unwrap

Include = str | Iterable[str] | Callable[[str, torch.Tensor], bool] | None
Forward = Callable[[Callable[..., Any], Batch], torch.Tensor]
MODEL_MODES = ("eval", "train", None)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: torch.dtype | str | None, default: torch.dtype) -> torch.dtype:
    """``None`` -> ``default``; "float32"/"float64" or the torch dtypes; anything else refused."""
    if dtype is None:
        dtype = default
    if isinstance(dtype, str):
        if dtype.removeprefix("torch.") not in DTYPES:
            raise OptionError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype.removeprefix("torch.")]
    if dtype not in DTYPES.values():
        raise OptionError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return dtype


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Mean loss and (classification) accuracy over ``n`` samples."""

    loss: float
    accuracy: float | None
    n: int


class ModelView:
    """``theta -> L(theta)`` and friends for one model on fixed batches (module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        include: Include = None,
        model_mode: str | None = "eval",
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        loss: str | LossFn | None = None,
        forward: Forward | None = None,
        batch_size: int | None = None,
        split: str = "train",
        samples: int | None = None,
        seed: int = 0,
        batches: list[Batch] | None = None,
    ) -> None:
        if model_mode not in MODEL_MODES:
            raise OptionError(f"model_mode must be one of {MODEL_MODES}, got {model_mode!r}")
        if not isinstance(model, nn.Module):
            raise OptionError(f"expected an nn.Module, got {type(model).__name__}")
        self.model, self.model_mode, self.forward = model, model_mode, forward
        chosen = named_params(model, include=include)
        if not chosen:
            trainable = [n for n, p in model.named_parameters() if p.requires_grad][:8]
            raise OptionError(f"include={include!r} selects no trainable parameter; trainable "
                              f"ones are {trainable}")
        check_finite(chosen)
        first = next(iter(chosen.values()))
        self.dtype = resolve_dtype(dtype, first.dtype if first.is_floating_point()
                                   else torch.float32)
        self.device = torch.device(device) if device is not None else first.device
        self.names = list(chosen)
        self.shapes = {k: tuple(v.shape) for k, v in chosen.items()}
        self.sizes = {k: v.numel() for k, v in chosen.items()}
        self.n = sum(self.sizes.values())
        self.state = {k: self._cast(v) for k, v in model.named_parameters()}
        self.buffer_names = [k for k, _ in model.named_buffers()]
        self.state.update({k: self._cast(v) for k, v in model.named_buffers()})
        self.theta = torch.cat([self.state[k].reshape(-1) for k in self.names]).detach()
        raw = batches if batches is not None else to_batches(
            data, split=split, batch_size=batch_size, samples=samples, seed=seed)
        self.batches = [cast(b, self.dtype, self.device) for b in raw]
        self.n_samples = sum(b.n for b in self.batches)
        if self.n_samples <= 0:
            raise DataError("the data is empty (0 samples)")
        y0 = self.batches[0].target
        #: the model computes its own loss from ``labels=`` (HF models, ``loss="model"``)
        self.model_loss = loss == "model"
        if self.model_loss and y0 is None:
            raise DataError("loss='model' needs targets to pass as labels=")
        #: None when the data has no targets and no loss callable was given (forward only)
        self.loss_fn: LossFn | None = (
            None if self.model_loss else
            resolve_loss(loss, y0 if y0 is not None else torch.zeros(1), model)
            if y0 is not None or callable(loss) else None)
        self.loss_spec = "default" if loss is None else (loss if isinstance(loss, str)
                                                         else getattr(loss, "__name__", "callable"))
        #: accuracy is reported for one integer label per sample (not for token labels)
        self.classify = y0 is not None and task_of(y0) == "classification" and y0.dim() == 1
        self.options = {"include": include if include is None or isinstance(include, str)
                        else (list(include) if not callable(include) else "callable"),
                        "model_mode": model_mode, "dtype": str(self.dtype).removeprefix("torch."),
                        "device": str(self.device), "loss": self.loss_spec,
                        "batch_size": batch_size, "split": split, "samples": samples,
                        "n_samples": self.n_samples}

    def on_batches(self, batches: list[Batch]) -> ModelView:
        """The same function on other batches (shares the cast state; no copy of the model)."""
        import copy

        other = copy.copy(self)
        other.batches = [cast(b, self.dtype, self.device) for b in batches]
        other.n_samples = sum(b.n for b in other.batches)
        other._products = None
        return other

    def restrict(self, names: Iterable[str]) -> ModelView:
        """The same function of a subset of the selected parameters (the others fixed)."""
        names = list(names)
        unknown = [k for k in names if k not in self.sizes]
        if unknown or not names:
            raise OptionError(f"unknown or empty parameter group {unknown or names}; known "
                              f"names: {self.names[:12]}")
        import copy

        other = copy.copy(self)
        other.names = [k for k in self.names if k in names]
        other.n = sum(self.sizes[k] for k in other.names)
        other.theta = torch.cat([self.state[k].reshape(-1) for k in other.names]).detach()
        other._products = None
        return other

    # -- the function ------------------------------------------------------------------------
    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        return t.to(self.device, self.dtype) if t.is_floating_point() else t.to(self.device)

    def weight(self, b: Batch) -> float:
        """``n_b / N``: the batch's share of the full-data mean."""
        return b.n / self.n_samples

    def mode(self) -> Any:
        """Context manager: the model in the view's mode (every flag restored on exit)."""
        return mode_ctx(self.model, self.model_mode, warn=False)

    def unflatten(self, theta: torch.Tensor, names: list[str] | None = None) -> dict[str, Any]:
        """Split a flat vector (optionally with a leading batch axis) into named tensors."""
        names = self.names if names is None else names
        n = sum(self.sizes[k] for k in names)
        if theta.shape[-1] != n:
            raise OptionError(f"vector has {theta.shape[-1]} entries but the selected "
                              f"parameters have {n}")
        lead, out, i = theta.shape[:-1], {}, 0
        for k in names:
            out[k] = theta[..., i:i + self.sizes[k]].reshape(*lead, *self.shapes[k])
            i += self.sizes[k]
        return out

    def full_state(self, theta: torch.Tensor | Mapping[str, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
        """Every parameter and buffer, with the selected ones at ``theta`` (flat or named)."""
        s = dict(self.state)
        if theta is not None:
            s.update(self.unflatten(theta) if isinstance(theta, torch.Tensor) else theta)
        if self.model_mode == "train":  # BatchNorm writes running stats: never into ours
            s.update({k: s[k].clone() for k in self.buffer_names})
        return s

    def call(self, state: Mapping[str, torch.Tensor], b: Batch) -> torch.Tensor:
        """The model's prediction on batch ``b`` at ``state`` (unwrapped), in the view's model mode.

        The first call is the check that model and data fit: its failure is a
        :class:`~inspect_kit.errors.DataError` naming the likely causes."""
        if getattr(self, "_fits", False):
            with self.mode():
                return self._call(state, b)
        try:
            with self.mode():
                out = self._call(state, b)
        except (RuntimeError, ValueError, IndexError, TypeError, KeyError) as exc:
            raise DataError(
                f"cannot evaluate the model on the data ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}); check that the inputs "
                "have the shape and dtype the model expects and that the model runs with "
                "torch.func.functional_call (pass forward= for custom calls)") from exc
        self._fits = True
        return out

    def _call(self, state: Mapping[str, torch.Tensor], b: Batch) -> torch.Tensor:
        if self.forward is not None:
            def fn(*args: Any, **kwargs: Any) -> Any:
                return functional_call(self.model, dict(state), args, kwargs)

            return unwrap(self.forward(fn, b))
        return unwrap(functional_call(self.model, dict(state), b.args, b.kwargs))

    def _need_loss(self) -> LossFn:
        if self.model_loss:
            return lambda out, y: out  # loss_and_output returns the model's own loss
        if self.loss_fn is None:
            raise DataError("the data has no targets: pass (X, y) pairs or dict batches with "
                            "'labels', or a loss callable that ignores its target")
        return self.loss_fn

    def loss_and_output(self, state: Mapping[str, torch.Tensor], b: Batch
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean loss of batch b, prediction)`` at ``state``; with ``loss="model"`` the model
        is called with ``labels=`` the targets and its own ``.loss`` is used."""
        if not self.model_loss:
            out = self.call(state, b)
            return self._need_loss()(out, b.target), out
        labelled = Batch(b.args, {**b.kwargs, "labels": b.target}, b.target, b.n)
        with self.mode():
            raw = functional_call(self.model, dict(state), labelled.args, labelled.kwargs)
        value = getattr(raw, "loss", None)
        if value is None and isinstance(raw, Mapping):
            value = raw.get("loss")
        if not isinstance(value, torch.Tensor):
            raise DataError(f"loss='model' but {type(self.model).__name__} returned no .loss "
                            "when given labels=; pass a loss name or callable instead")
        return value, unwrap(raw)

    def batch_loss(self, state: Mapping[str, torch.Tensor], b: Batch) -> torch.Tensor:
        """The scalar mean loss of batch ``b`` at ``state``."""
        value = self.loss_and_output(state, b)[0]
        if value.dim() != 0:
            raise OptionError(f"the loss must return a scalar batch mean, got shape "
                              f"{tuple(value.shape)}; reduce it with .mean()")
        return value

    # -- reductions over the data --------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, theta: torch.Tensor | Mapping[str, torch.Tensor] | None = None
                 ) -> Evaluation:
        """Full-data loss and accuracy at ``theta`` (default: the model's own parameters)."""
        total, correct = 0.0, 0
        self._need_loss()
        with self.mode():
            for b in self.batches:
                value, out = self.loss_and_output(self.full_state(theta), b)
                total += float(value) * b.n
                if self.classify:
                    correct += int((out.argmax(-1) == b.target).sum())
        loss = total / self.n_samples
        return Evaluation(loss, correct / self.n_samples if self.classify else None,
                          self.n_samples)

    def loss(self, theta: torch.Tensor | None = None) -> float:
        """``L(theta)`` (default: at the model's parameters)."""
        return self.evaluate(theta).loss

    def gradient(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``dL/dtheta`` as a flat vector in the view's dtype."""
        leaf = (self.theta if theta is None else theta).detach().clone().requires_grad_(True)
        total = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        with torch.enable_grad(), self.mode():
            for b in self.batches:
                value = self.batch_loss(self.full_state(leaf), b)
                g, = torch.autograd.grad(value, leaf)
                total.add_(g, alpha=self.weight(b))
        return total

    def functional_loss(self, b: Batch) -> Callable[[torch.Tensor], torch.Tensor]:
        """``flat_theta -> mean loss on b``, a pure function for ``torch.func`` transforms
        (the caller enters :meth:`mode`)."""
        def f(flat: torch.Tensor) -> torch.Tensor:
            return self.batch_loss(self.full_state(flat), b)

        return f

    def hvp(self, V: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """Hessian-vector products ``H v`` for ``v`` of shape ``(n,)`` or a block ``(k, n)``,
        restricted to the parameters ``names`` (default all); see :mod:`.hvp`."""
        return self.curvature_matvec(V, names, "hessian")

    def curvature_matvec(self, V: torch.Tensor, names: list[str] | None = None,
                         curvature: str = "hessian") -> torch.Tensor:
        """Products with the ``curvature`` matrix ("hessian", "ggn", "fisher",
        "empirical_fisher"), built by :meth:`products` (default options when not yet built)."""
        built = getattr(self, "_products", None) or {}
        products = built.get(curvature) or self.products(curvature)
        return products.matvec(V, names)

    def products(self, curvature: str = "hessian", *, cache_graph: bool | None = None,
                 vectorize: bool = True, mc_samples: int = 1, seed: int = 0) -> Any:
        """The product engine of ``curvature`` (:class:`.hvp.HessianProducts` or
        :class:`.ggn.GaussNewtonProducts`), built once per set of options: it caches the graphs
        that every product reuses."""
        key = (curvature, cache_graph, bool(vectorize), int(mc_samples), int(seed))
        if getattr(self, "_products", None) is None:
            self._products, self._product_keys = {}, {}
        if self._product_keys.get(curvature) != key:
            if curvature == "hessian":
                from .hvp import HessianProducts

                built = HessianProducts(self, cache_graph=cache_graph, vectorize=vectorize)
            else:
                from .ggn import GaussNewtonProducts

                built = GaussNewtonProducts(self, curvature, mc_samples=mc_samples, seed=seed,
                                            cache_graph=cache_graph, vectorize=vectorize)
            self._products[curvature], self._product_keys[curvature] = built, key
        return self._products[curvature]

    # -- many points ---------------------------------------------------------------------------
    def direction_to(self, target: Mapping[str, torch.Tensor], *, buffers: str = "follow",
                     all_params: bool = False) -> dict[str, torch.Tensor]:
        """``target - origin`` over the selected parameters (every floating parameter with
        ``all_params``) and, with ``buffers="follow"``, the floating buffers (KAN grids,
        BatchNorm statistics), so that coordinate 1 is exactly ``target``; with
        ``buffers="keep"`` the buffers stay the origin's."""
        if buffers not in BUFFER_POLICIES:
            raise OptionError(f"buffers must be one of {BUFFER_POLICIES}, got {buffers!r}")
        keys = list(self.names)
        if all_params:
            keys = [k for k, _ in self.model.named_parameters()
                    if self.state[k].is_floating_point()]
        if buffers == "follow":
            keys += [k for k in self.buffer_names if self.state[k].is_floating_point()]
        missing = [k for k in keys if k not in target]
        if missing:
            raise OptionError(f"the target lacks tensor {missing[0]!r}; both models must share "
                              "an architecture")
        out = {}
        for k in keys:
            t = target[k].detach().to(self.device)
            if tuple(t.shape) != tuple(self.state[k].shape):
                raise OptionError(f"tensor {k!r} has shape {tuple(self.state[k].shape)} vs "
                                  f"{tuple(t.shape)}; both models must share an architecture")
            out[k] = t.to(self.dtype) - self.state[k]
        return out

    def points(self, directions: list[Mapping[str, torch.Tensor]], *,
               origin: Mapping[str, torch.Tensor] | None = None, first_layer_trick: bool = True,
               accuracy: bool = True) -> Any:
        """An engine evaluating ``origin + sum_k c_k d_k`` (:class:`.points.PointEngine`)."""
        from .points import PointEngine

        return PointEngine(self, directions, origin=origin,
                           first_layer_trick=first_layer_trick, accuracy=accuracy)

    def evaluate_states(self, states: list[Mapping[str, torch.Tensor]]
                        ) -> tuple[list[float], list[float]]:
        """Loss and accuracy (NaN for regression) at each full state (e.g. REPAIRed points)."""
        losses, accs = [], []
        for s in states:
            full = dict(self.state)
            full.update({k: v.to(self.device, self.dtype) if v.is_floating_point() else v
                         for k, v in s.items()})
            ev = self.evaluate({k: v for k, v in full.items()})
            losses.append(ev.loss)
            accs.append(ev.accuracy if ev.accuracy is not None else float("nan"))
        return losses, accs

    def check_loss_finite(self, value: float, where: str) -> None:
        """Raise :class:`NonFiniteError` naming the split and the point when a loss is NaN/inf."""
        if value != value or value in (float("inf"), float("-inf")):
            raise NonFiniteError(
                f"the loss is {value} {where} (split {self.options['split']!r}); check the data "
                "for NaN/inf, the weights, and the loss for log(0)")


BUFFER_POLICIES = ("follow", "keep")


def differentiable_attention() -> Any:
    """Context manager: ``F.scaled_dot_product_attention`` on its math kernel, whose backward
    can be differentiated again (the fused CPU kernels' cannot: double backward and forward-mode
    products need this); the previous kernel choice is restored on exit."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        import contextlib

        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])
