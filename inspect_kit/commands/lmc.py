"""``inspect-kit lmc CKPT_A CKPT_B --data DATA``: linear mode connectivity of two checkpoints."""

from __future__ import annotations

import argparse

from .common import add_model_args, add_output_args, data_from_args, model_from_args, write_outputs

NAME = "lmc"
HELP = ("linear mode connectivity: loss/error along (1-t) A + t B, barriers, permutation "
        "alignment (weight/activation matching), REPAIR, layer-wise barriers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser, n=2)
    parser.add_argument("--data", required=True, metavar="DATA",
                        help="digits, wine, formula:NAME, file.pt/.npz with x and y, or "
                             "module:callable")
    parser.add_argument("--split", choices=("train", "test", "both"), default="both",
                        help="data split(s) to evaluate (default: both when the data has a "
                             "test split)")
    parser.add_argument("--align", choices=("none", "weights", "activations"), default="none",
                        help="permute B's hidden units to match A first (default: none)")
    parser.add_argument("--repair", action="store_true",
                        help="REPAIR the interpolated networks (rescale hidden units)")
    parser.add_argument("--layerwise", action="store_true",
                        help="also report the barrier of each layer interpolated alone")
    parser.add_argument("--steps", type=int, default=25,
                        help="uniform points in [0, 1] before refinement (default 25)")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from analyses.lmc.api import lmc
    from plotting.lmc import plot_lmc

    from ..data import DataBundle
    from ..errors import OptionError

    if args.steps < 2:
        raise OptionError(f"--steps must be >= 2, got {args.steps}")
    path_a, path_b = args.checkpoints
    model_a = model_from_args(args, path_a)
    model_b = model_from_args(args, path_b)
    data = data_from_args(args)
    if args.split != "both" and isinstance(data, DataBundle):
        data = {args.split: data.split(args.split)}
    result = lmc(model_a, model_b, data, align=args.align, repair=args.repair,
                 layerwise=args.layerwise, steps=args.steps, seed=args.seed)
    print(result.summary())
    write_outputs(args, result, plot=plot_lmc)
    return 0
