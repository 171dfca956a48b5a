"""Argument helpers shared by the subcommands: the kit's vocabulary as command-line flags.

Every flag is the Python option's name with dashes (``--trace-budget`` is ``trace_budget=``) and
has the Python default; CONTRIBUTING.md keeps the table. Old spellings stay one release as
aliases that print a deprecation warning (:class:`Deprecated`).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import OptionError

#: figure formats ``--plot`` accepts (by suffix)
FIGURE_FORMATS = (".png", ".svg", ".pdf")


def parse_json_kwargs(text: str | None, option: str = "--model-kwargs") -> dict[str, Any]:
    """Parse a JSON object given on the command line; a clear error names the option."""
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(
            f"{option} is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}; "
            'write it like \'{"width": [2, 5, 1]}\''
        ) from exc
    if not isinstance(value, dict):
        raise OptionError(f"{option} must be a JSON object like '{{\"width\": [2, 5, 1]}}'")
    return value


class Deprecated(argparse.Action):
    """An old flag spelling: stores into the new option's dest and warns on stderr.

    ``value_map`` translates old values (e.g. ``--mode ww`` -> ``--method compat``).
    """

    def __init__(self, option_strings: list[str], dest: str, new: str = "",
                 value_map: dict[str, Any] | None = None, const: Any = None,
                 nargs: Any = None, **kw: Any) -> None:
        self.new, self.value_map = new, value_map or {}
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"inspect-kit: warning: {option_string} is deprecated; use {self.new}",
              file=sys.stderr)
        value = self.const if self.nargs == 0 else values
        setattr(namespace, self.dest, self.value_map.get(value, value))


def deprecated(parser: argparse.ArgumentParser, old: str, new: str, dest: str, *,
               flag: Any = None, value_map: dict[str, Any] | None = None,
               type: Any = None) -> None:  # noqa: A002 - argparse's name
    """Register ``old`` as a hidden alias of ``new`` (a flag when ``flag`` is given)."""
    if flag is not None:
        parser.add_argument(old, dest=dest, action=Deprecated, new=new, nargs=0, const=flag,
                            help=argparse.SUPPRESS)
    else:
        parser.add_argument(old, dest=dest, action=Deprecated, new=new, value_map=value_map,
                            type=type, help=argparse.SUPPRESS)


def add_model_args(parser: argparse.ArgumentParser, n: int = 1) -> None:
    """Positional checkpoint(s) plus ``--model``, ``--model-kwargs`` and ``--trust``."""
    if n == 1:
        parser.add_argument("checkpoint", help="checkpoint file (.pt, .safetensors, pykan folder)")
    else:
        parser.add_argument("checkpoints", nargs=n, metavar="CKPT", help=f"{n} checkpoint files")
    parser.add_argument("--model", metavar="SPEC", default=None,
                        help="model for foreign checkpoints: zoo:NAME, package.module:factory "
                             "or path/to/file.py:factory")
    parser.add_argument("--model-kwargs", metavar="JSON", default=None,
                        help="JSON object of keyword arguments for --model")
    parser.add_argument("--trust", action="store_true",
                        help="allow unpickling a full model (runs code from the file)")


def add_data_arg(parser: argparse.ArgumentParser, *, required: bool = True,
                 splits: tuple[str, ...] = ("train", "test"),
                 samples: int | None = None, split: str = "train") -> None:
    """``--data``, ``--split`` (default ``split``, train) and ``--samples`` (a seeded random
    draw)."""
    parser.add_argument("--data", required=required, metavar="DATA",
                        help="digits, wine, formula:NAME, modadd:P[:FRAC], file.pt/.npz with x "
                             "and y, or module:callable")
    parser.add_argument("--split", choices=splits, default=split,
                        help=f"data split to analyse (default: {split})")
    parser.add_argument("--samples", type=int, default=samples, metavar="N",
                        help="a seeded random draw of N samples (default: "
                             + ("all" if samples is None else str(samples)) + ")")


def add_view_args(parser: argparse.ArgumentParser, *, dtype: bool = True,
                  batch: bool = True, loss: bool = True) -> None:
    """The model view's options: ``--model-mode``, ``--dtype``, ``--device``, ``--batch-size``,
    ``--loss``."""
    parser.add_argument("--model-mode", choices=("eval", "train"), default="eval",
                        help="model mode of the analysed function (default eval)")
    if dtype:
        parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                            help="dtype of the computation (default: the model's)")
        parser.add_argument("--device", default=None,
                            help="device of the computation, e.g. cpu or cuda:0 (default: the "
                                 "model's)")
    if batch:
        parser.add_argument("--batch-size", type=int, default=None,
                            help="split the data into batches of this size (weighted by size)")
    if loss:
        parser.add_argument("--loss", choices=("cross_entropy", "mse"), default=None,
                            help="loss (default by task: cross_entropy for integer targets, mse "
                                 "otherwise)")


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    """``--force``: run a request estimated to exceed the kit's time limit (memory limits stay)."""
    parser.add_argument("--force", action="store_true",
                        help="run even when the work is estimated to take longer than the time "
                             "limit (1 h; INSPECT_KIT_TIME_LIMIT seconds); memory limits stay")


def view_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The view options present on ``args`` as keyword arguments of an analysis."""
    out = {}
    for name in ("model_mode", "dtype", "device", "batch_size", "loss", "split", "samples"):
        if hasattr(args, name):
            out[name] = getattr(args, name)
    if out.get("batch_size") is not None and out["batch_size"] < 1:
        raise OptionError(f"--batch-size must be a positive integer, got {out['batch_size']}")
    if out.get("samples") is not None and out["samples"] < 1:
        raise OptionError(f"--samples must be a positive integer, got {out['samples']}")
    return out


def add_output_args(parser: argparse.ArgumentParser, *, plot: bool = True) -> None:
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="write the result as JSON (readable by the Result's load())")
    if plot:
        parser.add_argument("--plot", metavar="OUT", default=None,
                            help="write the figure (.png, .svg or .pdf)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice "
                                                            "(default 0)")
    add_progress_arg(parser)


def add_progress_arg(parser: argparse.ArgumentParser) -> None:
    """``--progress/--no-progress`` (default None: on unless ``INSPECT_KIT_PROGRESS=0``)."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: on; INSPECT_KIT_PROGRESS=0 "
                             "turns them off)")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work (unknown figure format, a folder that is a
    file, an existing folder given as the file, a device or pipe such as /dev/stdout)."""
    for opt in ("json", "plot", "out", "snapshots"):
        value = getattr(args, opt, None)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value)
        if opt == "out" and getattr(args, "command", None) == "gallery":  # a folder
            if path.exists() and not path.is_dir():
                raise OptionError(f"--out {value} is a file; the gallery needs a folder")
            continue
        if path.is_dir():
            raise OptionError(f"--{opt} {value} is a folder; give a file name inside it")
        if path.exists() and not path.is_file():  # a device, pipe or socket (/dev/stdout...)
            raise OptionError(f"--{opt} {value} is not a regular file; outputs are written to "
                              "a temporary file and renamed into place, so give a file path")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise OptionError(f"--{opt} {value}: {parent} is a file, not a folder")
        if opt in ("plot", "snapshots") and path.suffix.lower() not in FIGURE_FORMATS:
            raise OptionError(f"--{opt} {value}: unknown figure format {path.suffix or '(none)'}"
                              f"; use one of {', '.join(FIGURE_FORMATS)}")


def model_from_args(args: argparse.Namespace, path: str) -> Any:
    from ..checkpoints import load_model

    return load_model(path, model=args.model, model_kwargs=parse_json_kwargs(args.model_kwargs),
                      trust=args.trust)


def data_from_args(args: argparse.Namespace) -> Any:
    from ..data import load_data

    return load_data(args.data, seed=getattr(args, "seed", 0))


def render_figure(fig: Any, path: str) -> bytes:
    """A matplotlib figure as the bytes of ``path``'s format (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=120,
                    bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_outputs(args: argparse.Namespace, result: Any,
                  plot: Callable[[Any], Any] | None = None,
                  extra: dict[str, bytes] | None = None) -> None:
    """Write ``--json`` (the format of ``result.save``, read back by ``load``) and ``--plot``.

    All or nothing: the figure is rendered in memory first, then every file is written to a
    temporary file and the temporaries are renamed together (:func:`inspect_kit.io.write_all`).
    ``extra`` adds more ``{path: bytes}`` outputs to the same set. Under ``torchrun`` only rank 0
    writes (every rank holds the same result).
    """
    from ..distributed import is_main
    from ..io import write_all

    if not is_main():
        return
    files: dict[str, bytes] = dict(extra or {})
    if getattr(args, "plot", None):
        if plot is None:
            raise OptionError("this command has no figure; drop --plot")
        files[args.plot] = render_figure(plot(result), args.plot)
    if getattr(args, "json", None):
        files[args.json] = result.dumps().encode("utf-8")
    write_all(files)
