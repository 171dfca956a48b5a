"""``inspect-kit info CKPT``: what a checkpoint holds and which model it rebuilds."""

from __future__ import annotations

import argparse

from .common import add_model_args, add_output_args, write_outputs

NAME = "info"
HELP = "describe a checkpoint: format, zoo architecture, tensors, parameter count, trajectory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_output_args(parser, plot=False)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import load_checkpoint, load_model
    from ..info import CheckpointInfo
    from .common import parse_json_kwargs

    ckpt = load_checkpoint(args.checkpoint, trust=args.trust)
    model = load_model(ckpt, model=args.model, model_kwargs=parse_json_kwargs(args.model_kwargs))
    info = CheckpointInfo.of(ckpt, model)
    print(info.summary())
    write_outputs(args, info)
    return 0
