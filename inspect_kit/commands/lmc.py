"""``inspect-kit lmc CKPT_A CKPT_B --data DATA``: linear mode connectivity of two checkpoints."""

from __future__ import annotations

import argparse

from .common import (
    add_data_arg,
    add_force_arg,
    add_model_args,
    add_output_args,
    add_view_args,
    data_from_args,
    deprecated,
    model_from_args,
    view_kwargs,
    write_outputs,
)

NAME = "lmc"
HELP = ("linear mode connectivity: loss/error along (1-t) A + t B, barriers, permutation "
        "matching (weights/activations), REPAIR, layer-wise barriers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser, n=2)
    add_data_arg(parser, splits=("train", "test", "both"))
    parser.add_argument("--matching", choices=("none", "weights", "activations"), default="none",
                        help="permute B's hidden units to match A first (default: none)")
    parser.add_argument("--repair", action="store_true",
                        help="REPAIR the interpolated networks (rescale hidden units)")
    parser.add_argument("--layerwise", action="store_true",
                        help="also report the barrier of each layer interpolated alone")
    parser.add_argument("--steps", type=int, default=25,
                        help="uniform points in [0, 1] before refinement (default 25)")
    parser.add_argument("--buffers", choices=("follow", "keep"), default="follow",
                        help="follow: buffers (BatchNorm statistics, KAN grids) interpolate "
                             "with the weights, so t = 1 is B (default); keep: A's buffers")
    parser.add_argument("--engine", choices=("auto", "loop", "vmap"), default="auto",
                        help="evaluation engine (default auto)")
    add_view_args(parser)
    add_output_args(parser)
    add_force_arg(parser)
    deprecated(parser, "--align", "--matching", "matching")


def run(args: argparse.Namespace) -> int:
    from analyses.lmc.api import lmc
    from plotting.lmc import plot_lmc

    from ..errors import OptionError

    if args.steps < 2:
        raise OptionError(f"--steps must be >= 2, got {args.steps}")
    path_a, path_b = args.checkpoints
    model_a = model_from_args(args, path_a)
    model_b = model_from_args(args, path_b)
    data = data_from_args(args)
    result = lmc(model_a, model_b, data, matching=args.matching, repair=args.repair,
                 layerwise=args.layerwise, steps=args.steps, seed=args.seed,
                 buffers=args.buffers, engine=args.engine, force=args.force,
                 progress=args.progress,
                 **view_kwargs(args))
    print(result.summary())
    write_outputs(args, result, plot=plot_lmc)
    return 0
