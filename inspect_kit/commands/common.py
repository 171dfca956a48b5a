"""Argument helpers shared by the subcommands: model, data and output options."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ..errors import OptionError


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


def add_data_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required, metavar="DATA",
                        help="digits, wine, formula:NAME, file.pt/.npz with x and y, or "
                             "module:callable")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="data split to analyse (default: train)")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="OUT", default=None, help="write the result as JSON")
    parser.add_argument("--plot", metavar="OUT", default=None,
                        help="write the figure (.png, .svg or .pdf)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def model_from_args(args: argparse.Namespace, path: str) -> Any:
    from ..checkpoints import load_model

    return load_model(path, model=args.model, model_kwargs=parse_json_kwargs(args.model_kwargs),
                      trust=args.trust)


def data_from_args(args: argparse.Namespace) -> Any:
    from ..data import load_data

    return load_data(args.data, seed=getattr(args, "seed", 0))


def write_outputs(args: argparse.Namespace, result: Any,
                  plot: Callable[[Any], Any] | None = None) -> None:
    """Write ``result.to_dict()`` to ``--json`` and ``plot(result)`` to ``--plot`` (atomically).

    Under ``torchrun`` only rank 0 writes (every rank holds the same result).
    """
    from ..distributed import is_main
    from ..io import save_figure, write_json

    if not is_main():
        return
    if getattr(args, "json", None):
        write_json(args.json, result.to_dict())
    if getattr(args, "plot", None):
        if plot is None:
            raise OptionError("this command has no figure; drop --plot")
        import matplotlib.pyplot as plt

        fig = plot(result)
        try:
            save_figure(fig, args.plot)
        finally:
            plt.close(fig)
