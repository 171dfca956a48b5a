"""Data in any usual form, normalised once.

Accepted by every analysis (``data=``):

* a ``torch.utils.data.DataLoader`` yielding ``(x, y)`` batches;
* an ``(X, y)`` pair of tensors or arrays (one batch, or split with ``batch_size``);
* any iterable of ``(x, y)`` batches (a one-shot generator is materialised once);
* a :class:`DataBundle` (its training split) or a spec string (see :func:`load_data`).

Spec strings (:func:`load_data`): ``digits`` and ``wine`` (scikit-learn's bundled copies, a
stratified 80/20 split with ``random_state=0``, standardised with training statistics),
``formula:NAME`` (synthetic regression on a known formula, see :data:`FORMULAS`), a ``.pt`` or
``.npz`` file holding ``x``/``y`` (optionally ``x_test``/``y_test``), or ``module:callable``
returning any of the above.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError, NonFiniteError, OptionError

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Formula:
    """A synthetic regression target ``expr`` (sympy string in x1..xn) on a box ``ranges``."""

    expr: str
    ranges: tuple[tuple[float, float], ...]

    @property
    def n_vars(self) -> int:
        return len(self.ranges)

    def sympy(self) -> Any:
        """The formula as sympy, parsed by :func:`inspect_kit.formula_parser.parse_formula`
        (a restricted parser: the text is never evaluated as Python)."""
        import sympy

        from .formula_parser import parse_formula

        syms = [sympy.Symbol(f"x{i + 1}") for i in range(self.n_vars)]
        return parse_formula(self.expr, {s.name: s for s in syms}, what="data formula")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import sympy

        expr = self.sympy()
        fn = sympy.lambdify([sympy.Symbol(f"x{i + 1}") for i in range(self.n_vars)], expr, "numpy")
        cols = [x[:, i].double().numpy() for i in range(self.n_vars)]
        out = np.asarray(fn(*cols), dtype=np.float64) * np.ones(len(x))
        return torch.from_numpy(out).to(x.dtype).unsqueeze(1)


#: Known formulas for ``formula:NAME`` (the pykan README's and Feynman-style ones).
FORMULAS: dict[str, Formula] = {
    "exp_sin": Formula("exp(sin(pi*x1) + x2**2)", ((-1, 1), (-1, 1))),
    "product": Formula("x1*x2", ((-1, 1), (-1, 1))),
    "hypot": Formula("sqrt(x1**2 + x2**2)", ((-1, 1), (-1, 1))),
    "gaussian": Formula("exp(-x1**2/2)/sqrt(2*pi)", ((-3, 3),)),
    "ratio": Formula("x1/x2", ((-1, 1), (0.5, 2))),
    "sin_cos": Formula("sin(x1) + cos(2*x2)", ((-2, 2), (-2, 2))),
    "poly": Formula("x1**2 + x2**3 - x1*x2", ((-1, 1), (-1, 1))),
    # Feynman equations (Udrescu & Tegmark 2020, AI Feynman database), ranges as there
    "feynman_I_14_3": Formula("x1*x2*x3", ((1, 5), (1, 5), (1, 5))),             # U = m g z
    "feynman_II_3_24": Formula("x1/(4*pi*x2**2)", ((1, 5), (1, 5))),              # P / (4 pi r^2)
    "feynman_I_6_20": Formula("exp(-(x1/x2)**2/2)/(sqrt(2*pi)*x2)", ((-3, 3), (1, 3))),  # gauss
}


@dataclasses.dataclass(frozen=True)
class DataBundle:
    """A named data set with train and test splits.

    ``task`` is "classification" (integer ``y``) or "regression" (float ``y`` of shape (n, k)).
    ``input_shape`` is the shape of one sample (e.g. ``(1, 8, 8)`` for digits as an image).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    n_classes: int | None = None
    image_shape: tuple[int, ...] | None = None
    truth: str | None = None

    @property
    def task(self) -> str:
        return task_of(self.y_train)

    @property
    def n_features(self) -> int:
        return int(self.x_train[0].numel())

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return int(self.n_classes or int(self.y_train.max()) + 1)
        return int(self.y_train.shape[1]) if self.y_train.dim() > 1 else 1

    def split(self, which: str = "train") -> Batch:
        """``(X, y)`` of the "train" or "test" split."""
        if which == "train":
            return self.x_train, self.y_train
        if which == "test":
            if self.x_test is None or self.y_test is None:
                raise DataError(f"data set {self.name!r} has no test split; use split='train'")
            return self.x_test, self.y_test
        raise OptionError(f"split must be 'train' or 'test', got {which!r}")


def task_of(y: torch.Tensor) -> str:
    """'classification' for integer targets, 'regression' for floating targets."""
    return "regression" if torch.is_floating_point(y) else "classification"


def _standardise(xtr: np.ndarray, xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd == 0] = 1.0
    return (xtr - mu) / sd, (xte - mu) / sd


def _sklearn_set(name: str) -> DataBundle:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loader = {"digits": datasets.load_digits, "wine": datasets.load_wine}[name]
    ds = loader()
    x, y = ds.data.astype(np.float64), ds.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    xtr, xte = _standardise(xtr, xte)
    return DataBundle(
        name=name,
        x_train=torch.tensor(xtr, dtype=torch.float32),
        y_train=torch.tensor(ytr),
        x_test=torch.tensor(xte, dtype=torch.float32),
        y_test=torch.tensor(yte),
        n_classes=int(y.max()) + 1,
        image_shape=(1, 8, 8) if name == "digits" else None,
    )


def formula_data(
    name: str, *, n_train: int = 1000, n_test: int = 1000, noise: float = 0.0, seed: int = 0
) -> DataBundle:
    """Synthetic regression data ``y = f(x)`` (+ Gaussian noise) with x uniform on the box."""
    if name not in FORMULAS:
        raise DataError(f"unknown formula {name!r}; known: {', '.join(sorted(FORMULAS))}")
    f = FORMULAS[name]
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([r[0] for r in f.ranges], dtype=torch.float64)
    hi = torch.tensor([r[1] for r in f.ranges], dtype=torch.float64)

    def draw(n: int) -> Batch:
        x = lo + (hi - lo) * torch.rand(n, f.n_vars, generator=g, dtype=torch.float64)
        y = f(x)
        if noise:
            y = y + noise * torch.randn(y.shape, generator=g, dtype=torch.float64)
        return x.float(), y.float()

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return DataBundle(f"formula:{name}", xtr, ytr, xte, yte, truth=f.expr)


def _from_file(path: Path) -> DataBundle:
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: torch.from_numpy(z[k]) for k in z.files}
        elif path.suffix == ".pt":
            d = torch.load(path, weights_only=True, map_location="cpu")
        else:
            raise DataError(f"data file {path} must end in .pt or .npz")
    except DataError:
        raise
    except Exception as exc:  # unreadable or unsafe file
        raise DataError(f"cannot read data file {path}: {exc}") from exc
    if not isinstance(d, dict) or "x" not in d or "y" not in d:
        raise DataError(f"data file {path} must hold 'x' and 'y' (and optionally 'x_test', 'y_test')")

    def t(v: Any) -> torch.Tensor:
        v = torch.as_tensor(v)
        return v.float() if v.is_floating_point() else v.long()

    return DataBundle(
        name=path.stem, x_train=t(d["x"]), y_train=t(d["y"]),
        x_test=t(d["x_test"]) if "x_test" in d else None,
        y_test=t(d["y_test"]) if "y_test" in d else None,
    )


def load_data(spec: str, *, seed: int = 0) -> DataBundle:
    """Load a data set by spec string (see the module docstring for the accepted forms)."""
    if not isinstance(spec, str) or not spec:
        raise DataError(f"data spec must be a non-empty string, got {spec!r}")
    if spec in ("digits", "wine"):
        return _sklearn_set(spec)
    if spec.startswith("formula:"):
        return formula_data(spec.split(":", 1)[1], seed=seed)
    path = Path(spec)
    if path.suffix in (".pt", ".npz"):
        return _from_file(path)
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"cannot import data factory {spec!r}: {exc}") from exc
        out = obj() if callable(obj) else obj
        if isinstance(out, DataBundle):
            return out
        x, y = next(iter(Batches.of(out)))
        return DataBundle(spec, x, y)
    raise DataError(
        f"unknown data {spec!r}: use 'digits', 'wine', 'formula:NAME' "
        f"({', '.join(sorted(FORMULAS))}), a .pt/.npz file with x and y, or 'module:callable'"
    )


class Batches:
    """A re-iterable sequence of ``(x, y)`` batches with the total sample count.

    Build it with :meth:`Batches.of`, which accepts every data form of this module.
    """

    def __init__(self, source: Iterable[Batch] | list[Batch], n_samples: int | None = None):
        self._source = source
        self._n = n_samples

    @classmethod
    def of(cls, data: Any, *, batch_size: int | None = None, split: str = "train") -> Batches:
        """Normalise ``data`` (see module docstring); ``batch_size`` splits an ``(X, y)`` pair."""
        if isinstance(data, Batches):
            return data
        if isinstance(data, str):
            data = load_data(data)
        if isinstance(data, DataBundle):
            data = data.split(split)
        if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
            x, y = (torch.as_tensor(v) for v in data)
            if x.is_floating_point() is False and x.dtype != torch.bool:
                x = x.float()
            if len(x) != len(y):
                raise DataError(f"X has {len(x)} samples but y has {len(y)}; they must match")
            if len(x) == 0:
                raise DataError("the data is empty (0 samples)")
            if batch_size is None or batch_size >= len(x):
                return cls([(x, y)], len(x))
            return cls([(x[i : i + batch_size], y[i : i + batch_size])
                        for i in range(0, len(x), batch_size)], len(x))
        from torch.utils.data import DataLoader

        if isinstance(data, DataLoader):
            return cls(data)
        if isinstance(data, Iterable):
            batches = [cls._as_pair(b) for b in data]
            if not batches:
                raise DataError("the data iterable yielded no batches")
            return cls(batches, sum(len(b[0]) for b in batches))
        raise DataError(
            f"cannot use {type(data).__name__} as data: pass a DataLoader, an (X, y) pair, an "
            "iterable of (x, y) batches, a DataBundle or a spec such as 'digits'"
        )

    @staticmethod
    def _as_pair(b: Any) -> Batch:
        if isinstance(b, dict) and "x" in b and "y" in b:
            return torch.as_tensor(b["x"]), torch.as_tensor(b["y"])
        if isinstance(b, (tuple, list)) and len(b) >= 2:
            return torch.as_tensor(b[0]), torch.as_tensor(b[1])
        raise DataError(f"each batch must be an (x, y) pair, got {type(b).__name__}")

    def __iter__(self) -> Iterator[Batch]:
        for b in self._source:
            yield self._as_pair(b)

    @property
    def n_samples(self) -> int:
        if self._n is None:
            self._n = sum(len(x) for x, _ in self)
        return self._n

    def tensors(self) -> Batch:
        """All batches concatenated into one ``(X, y)`` pair."""
        xs, ys = zip(*self)
        return torch.cat(xs), torch.cat(ys)

    def first_target(self) -> torch.Tensor:
        return next(iter(self))[1]

    def check_finite(self) -> None:
        for x, _ in self:
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise NonFiniteError("the input data contains NaN or inf; clean it first")


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_loss(loss: str | LossFn | None, y: torch.Tensor) -> LossFn:
    """The loss callable ``(output, target) -> mean loss``.

    ``None`` picks by task: cross-entropy for integer targets, mean squared error otherwise.
    Strings "cross_entropy"/"ce" and "mse" name those two; any callable is used as given and must
    return the *mean* over the batch (batches are weighted by their size when summed).
    """
    if callable(loss):
        return loss
    if loss is None:
        loss = "cross_entropy" if task_of(y) == "classification" else "mse"
    if loss in ("cross_entropy", "ce"):
        return F.cross_entropy
    if loss == "mse":
        return lambda out, t: F.mse_loss(out, t.reshape(out.shape).to(out.dtype))
    raise OptionError(f"loss must be 'cross_entropy', 'mse' or a callable, got {loss!r}")


def accuracy(output: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct argmax predictions (classification only)."""
    return float((output.argmax(-1) == y).float().mean())


def weighted_mean(values: list[float], weights: list[int]) -> float:
    """Sample-weighted mean of per-batch means (exact full-data mean for mean losses)."""
    total = sum(weights)
    return math.fsum(v * w for v, w in zip(values, weights)) / total
