"""Data in any usual form, normalised once.

Accepted by every analysis (``data=``):

* a ``torch.utils.data.DataLoader`` yielding ``(x, y)`` batches;
* an ``(X, y)`` pair of tensors or arrays (one batch, or split with ``batch_size``);
* any iterable of ``(x, y)`` batches (a one-shot generator is materialised once);
* a :class:`DataBundle` (its training split) or a spec string (see :func:`load_data`).

Spec strings (:func:`load_data`): ``digits`` and ``wine`` (scikit-learn's bundled copies, a
stratified 80/20 split with ``random_state=0``, standardised with training statistics),
``formula:NAME`` (synthetic regression on a known formula, see :data:`FORMULAS`),
``modadd:P[:FRAC[:SEED]]`` (modular addition, :func:`modadd_data`), a ``.pt`` or
``.npz`` file holding ``x``/``y`` (optionally ``x_test``/``y_test``), or ``module:callable``
returning any of the above.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, OptionError
from .losses import LossFn, resolve_loss, task_of  # noqa: F401 - re-exported

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
    ``x_train``/``x_test`` are tensors, or dicts of model inputs by name for text models
    (``{"input_ids": ..., "attention_mask": ...}``).
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


def modadd_data(p: int, frac: float = 0.3, seed: int = 0) -> DataBundle:
    """Modular addition: all ``p^2`` pairs ``(a, b)`` as integer tokens, labels ``(a + b) mod p``.

    Inputs have shape ``(N, 2)`` and dtype long (they stay integer through the model view);
    pair ``(a, b)`` is sample ``a p + b`` of the full grid. A seeded random share ``frac`` of the
    pairs (``round(frac p^2)``, drawn with ``torch.Generator().manual_seed(seed)``, kept in grid
    order) is the training split, the rest the test split, as in Power et al. 2022 and Nanda et
    al. 2023 (who train on 30% of the pairs for p = 113). The split seed is part of the spec
    (``modadd:P:FRAC:SEED``), never an analysis's ``seed``, so a model is always audited on the
    split it was trained on.

    >>> d = modadd_data(5, frac=0.4)
    >>> d.x_train.shape, d.x_train.dtype, len(d.x_test), d.n_classes
    (torch.Size([10, 2]), torch.int64, 15, 5)
    >>> bool(((d.x_train.sum(1) % 5) == d.y_train).all())
    True
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 3:
        raise DataError(f"modadd needs an integer modulus p >= 3, got {p!r}; write e.g. modadd:59")
    if not 0.0 < float(frac) < 1.0:
        raise DataError(f"modadd training fraction must be in (0, 1), got {frac!r}; write e.g. "
                        "modadd:59:0.3")
    n = p * p
    n_train = min(max(int(round(float(frac) * n)), 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    train, test = perm[:n_train].sort().values, perm[n_train:].sort().values
    grid = torch.stack([torch.arange(n) // p, torch.arange(n) % p], 1)
    labels = grid.sum(1) % p
    name = f"modadd:{p}:{float(frac):g}" + (f":{int(seed)}" if seed else "")
    return DataBundle(name, grid[train], labels[train], grid[test], labels[test], n_classes=p,
                      truth=f"(a + b) mod {p}")


def _modadd_spec(spec: str) -> DataBundle:
    parts = spec.split(":")[1:]
    try:
        if not 1 <= len(parts) <= 3:
            raise ValueError
        p = int(parts[0])
        frac = float(parts[1]) if len(parts) > 1 else 0.3
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise DataError(f"cannot read {spec!r}: write modadd:P, modadd:P:FRAC or "
                        "modadd:P:FRAC:SEED, e.g. modadd:59 or modadd:59:0.4") from None
    return modadd_data(p, frac, seed)


def _from_file(path: Path) -> DataBundle:
    from . import torchfile
    from .errors import CheckpointError, first_line

    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: torch.from_numpy(z[k]) for k in z.files}
        elif path.suffix == ".pt":
            d = torchfile.load(path)  # zip format only: the file cannot choose an allocation
        else:
            raise DataError(f"data file {path} must end in .pt or .npz")
    except DataError:
        raise
    except CheckpointError as exc:
        raise DataError(f"cannot read data file: {exc}") from exc
    except MemoryError as exc:
        raise DataError(f"reading data file {path} ran out of memory") from exc
    except Exception as exc:  # unreadable or unsafe file
        raise DataError(f"cannot read data file {path}: {first_line(exc)}") from exc
    if not isinstance(d, dict):
        raise DataError(f"data file {path} must hold a dict of tensors ('x' and 'y', or model "
                        "inputs such as 'input_ids' with 'labels')")
    if "x" in d and "y" in d:
        return _xy_bundle(path, d)
    return _dict_bundle(path, d)


def _xy_bundle(path: Path, d: dict[str, Any]) -> DataBundle:
    """``x``/``y`` (and optionally ``x_test``/``y_test``), checked: same sample count N >= 1,
    real numbers, labels (N,) or float targets (N,)/(N, k)."""
    x, y = _array(d["x"], path, "x"), _array(d["y"], path, "y")
    _check_pair(x, y, path, "")
    xt = _array(d["x_test"], path, "x_test") if "x_test" in d else None
    yt = _array(d["y_test"], path, "y_test") if "y_test" in d else None
    if (xt is None) != (yt is None):
        raise DataError(f"data file {path} has only one of x_test and y_test; give both or neither")
    if xt is not None and yt is not None:
        _check_pair(xt, yt, path, "_test")
        if xt.shape[1:] != x.shape[1:] or yt.shape[1:] != y.shape[1:] \
                or xt.is_floating_point() != x.is_floating_point() \
                or yt.is_floating_point() != y.is_floating_point():
            raise DataError(f"data file {path}: x_test/y_test differ from x/y in sample shape or "
                            "kind (float vs integer)")
    return DataBundle(name=path.stem, x_train=x, y_train=y, x_test=xt, y_test=yt)


def _array(v: Any, path: Path, name: str) -> torch.Tensor:
    """A real tensor: floating -> float32, integer/bool -> int64; anything else refused."""
    try:
        v = torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"data file {path}: {name} is not an array ({type(v).__name__})") from exc
    if v.is_complex():
        raise DataError(f"data file {path}: {name} is complex ({v.dtype}); give real numbers")
    return v.float() if v.is_floating_point() else v.long()


def _check_pair(x: torch.Tensor, y: torch.Tensor, path: Path, tag: str) -> None:
    """``x`` (N, ...) and ``y`` (N,) or (N, k) with the same N >= 1."""
    if x.dim() < 1 or y.dim() < 1 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"data file {path}: x{tag} {tuple(x.shape)} and y{tag} {tuple(y.shape)} "
                        "must hold the same number N >= 1 of samples along the first axis")
    if y.dim() > 2 or (not y.is_floating_point() and y.dim() != 1):
        raise DataError(f"data file {path}: y{tag} has shape {tuple(y.shape)}; use class labels "
                        "(N,) of integers or regression targets (N,) / (N, k) of floats")


def _dict_bundle(path: Path, d: dict[str, Any]) -> DataBundle:
    """A file of model inputs by name (``input_ids``, ``attention_mask``, ``pixel_values``,
    ...) and ``labels``; or ``{"train": {...}, "test": {...}}`` of those. Integer tensors stay
    integer (token ids)."""
    from .view.batches import TARGET_KEYS

    def split(part: Any, where: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not isinstance(part, dict) or not part:
            raise DataError(f"data file {path}: {where} must be a dict of tensors")
        part = {str(k): torch.as_tensor(v) for k, v in part.items()}
        key = next((k for k in TARGET_KEYS if k in part), None)
        if key is None:
            raise DataError(f"data file {path}: {where} has no target; add 'labels' (or 'y')")
        target = part.pop(key)
        if not part:
            raise DataError(f"data file {path}: {where} has a target but no model inputs")
        flat = [k for k, v in (*part.items(), (key, target)) if v.dim() == 0]
        if flat:
            raise DataError(f"data file {path}: {where} has scalars ({', '.join(flat)}); every "
                            "tensor needs a first axis of samples")
        n = {len(v) for v in part.values()} | {len(target)}
        if len(n) != 1:
            raise DataError(f"data file {path}: {where} holds tensors of different lengths {n}")
        return part, target

    if "train" in d:
        xtr, ytr = split(d["train"], "'train'")
        xte, yte = split(d["test"], "'test'") if "test" in d else (None, None)
    else:
        (xtr, ytr), (xte, yte) = split(d, "the file"), (None, None)
    return DataBundle(name=path.stem, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


def load_data(spec: str, *, seed: int = 0) -> DataBundle:
    """Load a data set by spec string (see the module docstring for the accepted forms)."""
    if not isinstance(spec, str) or not spec:
        raise DataError(f"data spec must be a non-empty string, got {spec!r}")
    if spec in ("digits", "wine"):
        return _sklearn_set(spec)
    if spec.startswith("formula:"):
        return formula_data(spec.split(":", 1)[1], seed=seed)
    if spec.startswith("modadd:"):
        return _modadd_spec(spec)
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
        from .view.batches import concat, to_batches

        whole = concat(to_batches(out))
        x = whole.args[0] if whole.args else dict(whole.kwargs)
        return DataBundle(spec, x, whole.target)
    raise DataError(
        f"unknown data {spec!r}: use 'digits', 'wine', 'formula:NAME' "
        f"({', '.join(sorted(FORMULAS))}), 'modadd:P', a .pt/.npz file with x and y, or 'module:callable'"
    )


def accuracy(output: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of correct argmax predictions (classification only)."""
    return float((output.argmax(-1) == y).float().mean())


def weighted_mean(values: list[float], weights: list[int]) -> float:
    """Sample-weighted mean of per-batch means (exact full-data mean for mean losses)."""
    total = sum(weights)
    return math.fsum(v * w for v, w in zip(values, weights)) / total
