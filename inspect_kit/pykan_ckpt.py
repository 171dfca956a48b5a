"""pykan checkpoints (``PREFIX_config.yml`` + ``PREFIX_state``), read without trusting them.

pykan's own ``MultKAN.loadckpt`` builds whatever the YAML declares before looking at the
tensors, unpickles ``PREFIX_cache_data`` and may write folders (``auto_save``). Here the YAML
is parsed with ``yaml.safe_load`` and every field is type-checked, the state is read with
``torch.load(weights_only=True)``, and the widths, grid and spline order are compared with the
spline coefficient tensors *before* a ``MultKAN`` is built (with ``auto_save=False``), so a
damaged or hostile folder is refused with one line instead of allocating or crashing.

>>> expected_coef_shapes([[2, 0], [3, 2], [1, 0]], grid=3, k=3, mult_arity=2)
[(2, 7, 6), (5, 1, 6)]
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import torchfile
from .errors import CheckpointError

#: config fields and their types (``bool`` is checked before ``int``: True is an int in Python)
FIELDS: dict[str, tuple[type, ...]] = {
    "grid": (int,), "k": (int,), "base_fun_name": (str,), "symbolic_enabled": (bool,),
    "affine_trainable": (bool,), "grid_eps": (int, float), "sp_trainable": (bool,),
    "sb_trainable": (bool,), "state_id": (int,), "round": (int,),
}
BASE_FUNS = ("silu", "identity", "zero")


def _short(v: Any) -> str:
    """A safe preview of a parsed YAML value (nested aliases could expand enormously)."""
    return repr(v)[:40] if isinstance(v, (int, float, str, bool, type(None))) else type(v).__name__


def _width(value: Any, where: str) -> list[list[int]]:
    if not isinstance(value, list) or len(value) < 2:
        raise CheckpointError(f"{where}: 'width' must be a list of at least two layer widths")
    out = []
    for w in value:
        pair = [w, 0] if isinstance(w, int) and not isinstance(w, bool) else w
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
                or pair[0] < 0 or pair[1] < 0 or pair[0] + pair[1] < 1):
            raise CheckpointError(f"{where}: 'width' entries must be n or [n_sum, n_mult] with "
                                  f"non-negative integers, got {_short(w)}")
        out.append(pair)
    return out


def expected_coef_shapes(width: list[list[int]], *, grid: int, k: int,
                         mult_arity: Any) -> list[tuple[int, int, int]]:
    """pykan's ``act_fun.{l}.coef`` shapes ``(in, out, grid + k)`` for a normalised ``width``."""
    w_in = [a + m for a, m in width]
    if isinstance(mult_arity, int):
        w_out = [a + mult_arity * m for a, m in width]
    else:
        w_out = [a + sum(mult_arity[l]) for l, (a, _) in enumerate(width)]
    return [(w_in[l], w_out[l + 1], grid + k) for l in range(len(width) - 1)]


def read_config(prefix: Path) -> dict[str, Any]:
    """The YAML config, parsed safely and type-checked (CheckpointError naming the file)."""
    import yaml

    file = Path(f"{prefix}_config.yml")
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read the pykan config {file}: {first}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{file} is not a pykan config (a YAML mapping)")
    missing = [f for f in ("width", *FIELDS) if f not in config]
    if missing:
        raise CheckpointError(f"{file} lacks {', '.join(missing)}; is it a pykan config?")
    for name, types in FIELDS.items():
        v = config[name]
        if not isinstance(v, types) or (bool not in types and isinstance(v, bool)):
            raise CheckpointError(f"{file}: {name} must be {'/'.join(t.__name__ for t in types)}"
                                  f", got {_short(v)}")
    config["width"] = _width(config["width"], str(file))
    if config["grid"] < 1 or config["k"] < 0 or config["base_fun_name"] not in BASE_FUNS:
        raise CheckpointError(f"{file}: needs grid >= 1, k >= 0 and base_fun_name in {BASE_FUNS}")
    arity = config.get("mult_arity", 2)
    ok = (isinstance(arity, int) and not isinstance(arity, bool) and arity >= 1) or (
        isinstance(arity, list) and len(arity) == len(config["width"])
        and all(isinstance(a, list) and all(isinstance(x, int) and x >= 1 for x in a)
                and len(a) == config["width"][l][1] for l, a in enumerate(arity)))
    rng = config.get("grid_range", [-1, 1])
    if not ok or not (isinstance(rng, list) and len(rng) == 2
                      and all(isinstance(v, (int, float)) for v in rng) and rng[0] < rng[1]):
        raise CheckpointError(f"{file}: mult_arity or grid_range is malformed")
    config["mult_arity"], config["grid_range"] = arity, rng
    return config


def _read_state(prefix: Path) -> dict[str, torch.Tensor]:
    file = Path(f"{prefix}_state")
    try:
        state = torchfile.load(file)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot read the pykan state safely: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{file} is not a state dict of tensors")
    return state


def _symbolic_names(config: dict[str, Any], shapes: list[tuple[int, int, int]],
                    file: Path) -> list[list[list[str]]]:
    from kan.utils import SYMBOLIC_LIB

    out = []
    for l, (n_in, n_out, _) in enumerate(shapes):
        names = config.get(f"symbolic.funs_name.{l}", [["0"] * n_in for _ in range(n_out)])
        if (not isinstance(names, list) or len(names) != n_out
                or not all(isinstance(r, list) and len(r) == n_in for r in names)
                or not all(isinstance(f, str) and f in SYMBOLIC_LIB for r in names for f in r)):
            raise CheckpointError(f"{file}: symbolic.funs_name.{l} must be a {n_out} x {n_in} "
                                  "table of pykan symbolic function names")
        out.append(names)
    return out


def load_pykan(prefix: Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A ``MultKAN`` rebuilt from a checked pykan checkpoint, and its state dict."""
    config = read_config(prefix)
    state = _read_state(prefix)
    shapes = expected_coef_shapes(config["width"], grid=config["grid"], k=config["k"],
                                  mult_arity=config["mult_arity"])
    for l, want in enumerate(shapes):
        have = state.get(f"act_fun.{l}.coef")
        if have is None or tuple(have.shape) != want:
            raise CheckpointError(
                f"{prefix}: the config declares layer {l} with spline coefficients {want} but "
                f"the state holds {None if have is None else tuple(have.shape)}; the folder's "
                "two files do not belong together")
    if f"act_fun.{len(shapes)}.coef" in state:
        raise CheckpointError(f"{prefix}: the state has more layers than the config declares")
    try:
        from kan import MultKAN
    except ImportError as exc:
        raise CheckpointError(
            f"{prefix} is a pykan checkpoint; install pykan (pip install 'inspect-kit[kan]')"
        ) from exc
    names = _symbolic_names(config, shapes, Path(f"{prefix}_config.yml"))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = MultKAN(width=config["width"], grid=config["grid"], k=config["k"],
                            mult_arity=config["mult_arity"], base_fun=config["base_fun_name"],
                            symbolic_enabled=config["symbolic_enabled"],
                            affine_trainable=config["affine_trainable"],
                            grid_eps=config["grid_eps"], grid_range=config["grid_range"],
                            sp_trainable=config["sp_trainable"],
                            sb_trainable=config["sb_trainable"], state_id=config["state_id"],
                            auto_save=False, first_init=False, ckpt_path=str(prefix),
                            round=config["round"] + 1, device="cpu")
            model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise CheckpointError(f"{prefix}: the state does not fit the config: {first}") from exc
    _apply_symbolic(model, names)
    model.auto_save = False
    return model, model.state_dict()


def _apply_symbolic(model: nn.Module, names: list[list[list[str]]]) -> None:
    """Restore the symbolic edge functions exactly as pykan's ``loadckpt`` does."""
    from kan.utils import SYMBOLIC_LIB

    for l, table in enumerate(names):
        layer = model.symbolic_fun[l]
        for j, row in enumerate(table):
            for i, name in enumerate(row):
                lib = SYMBOLIC_LIB[name]
                layer.funs_name[j][i] = name
                layer.funs[j][i] = lib[0]
                layer.funs_sympy[j][i] = lib[1]
                layer.funs_avoid_singularity[j][i] = lib[3]
