"""``inspect-kit fourier CKPT --data modadd:P [--key-frequencies RULE] --json OUT --plot OUT``:
the Fourier audit of a modular-addition model (see :mod:`analyses.fourier`).

A kit checkpoint with training snapshots (``inspect-kit train modadd --snapshot-every N``) also
gets the progress measures per snapshot (``--no-trajectory`` skips them).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import OptionError
from .common import (
    add_data_arg,
    add_model_args,
    add_output_args,
    add_view_args,
    data_from_args,
    model_from_args,
    view_kwargs,
    write_outputs,
)

NAME = "fourier"
HELP = "modular addition: Fourier spectra, key frequencies, neuron purity, restricted/excluded loss"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser, splits=("train", "test", "both"), split="both")
    parser.add_argument("--p", type=int, default=None,
                        help="the modulus (default: the data set's class count or the model's)")
    parser.add_argument("--key-frequencies", default="embedding", metavar="RULE",
                        help="embedding (largest gap of the embedding spectrum, default), "
                             "neurons, logits, a count N (the N largest) or a list like 4,11,14")
    parser.add_argument("--embedding", default=None, metavar="NAME",
                        help="embedding parameter or module (default: the model's fourier_points "
                             "or its only nn.Embedding)")
    parser.add_argument("--neurons", default=None, metavar="NAME",
                        help="module whose output are the neurons (default: fourier_points)")
    parser.add_argument("--unembedding", default=None, metavar="NAME",
                        help="unembedding parameter or module (default: fourier_points)")
    parser.add_argument("--position", type=int, default=None,
                        help="sequence position of logits and neurons for (B, T, N) outputs "
                             "(default: the model's, else the last)")
    parser.add_argument("--operands", default="0,1", metavar="I,J",
                        help="input columns holding a and b (default 0,1)")
    parser.add_argument("--trajectory", action=argparse.BooleanOptionalAction, default=True,
                        help="progress measures per training snapshot of a kit checkpoint "
                             "(default: on when it holds snapshots)")
    add_view_args(parser, batch=False, loss=False)
    add_output_args(parser)


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise OptionError(f"{option} {text!r} must be integers separated by commas, e.g. "
                          "4,11,14") from None


def _key_rule(text: str) -> Any:
    if text in ("embedding", "neurons", "logits"):
        return text
    values = _ints(text, "--key-frequencies")
    if "," not in text and len(values) == 1:
        return values[0]
    return values


def _trajectory(args: argparse.Namespace) -> tuple[list | None, list | None]:
    from ..checkpoints import load_checkpoint

    if not args.trajectory:
        return None, None
    ck = load_checkpoint(args.checkpoint, trust=args.trust)
    if not ck.trajectory:
        return None, None
    extra = (ck.meta or {}).get("extra", {}) or {}
    epochs = (extra.get("train") or {}).get("snapshot_epochs") or extra.get("snapshot_epochs")
    if epochs is not None and len(epochs) != len(ck.trajectory):
        epochs = None
    return list(ck.trajectory), epochs


def run(args: argparse.Namespace) -> int:
    from analyses.fourier.api import fourier
    from plotting.fourier import plot_summary

    operands = _ints(args.operands, "--operands")
    if len(operands) != 2:
        raise OptionError(f"--operands {args.operands!r} must name two columns, e.g. 0,1")
    model = model_from_args(args, args.checkpoint)
    data = data_from_args(args)
    trajectory, epochs = _trajectory(args)
    kw = view_kwargs(args)
    result = fourier(model, data, p=args.p, key_frequencies=_key_rule(args.key_frequencies),
                     embedding=args.embedding, neurons=args.neurons, unembedding=args.unembedding,
                     position=args.position, operands=tuple(operands), trajectory=trajectory,
                     snapshot_epochs=epochs, seed=args.seed, progress=args.progress, **kw)
    write_outputs(args, result, plot=plot_summary)
    print(result.summary())
    return 0
