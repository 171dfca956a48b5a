"""``inspect-kit intrinsic-dimension CKPT --data DATA``: d_int90 by random-subspace training,
with both baseline definitions (see :mod:`analyses.intrinsic_dimension`)."""

from __future__ import annotations

import argparse

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

NAME = "intrinsic-dimension"
HELP = ("intrinsic dimension (Li et al. 2018): accuracy of random-subspace training against d, "
        "d_int90 for both baseline definitions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser)
    parser.add_argument("--dims", type=int, nargs="+", default=None, metavar="D",
                        help="subspace dimensions of the grid (default powers of two up to the "
                             "parameter count)")
    parser.add_argument("--projection", choices=("fastfood", "dense"), default="fastfood",
                        help="random projection: fastfood (O(D) memory; default) or dense")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="Adam learning rate of the subspace coordinates (default 0.05)")
    parser.add_argument("--full-lr", type=float, default=1e-3,
                        help="Adam learning rate of the full-model baseline (default 1e-3)")
    parser.add_argument("--train-batch-size", type=int, default=64,
                        help="mini-batch size of the training runs (default 64)")
    parser.add_argument("--refine", type=int, default=3,
                        help="bisection steps inside each threshold's bracket (default 3)")
    parser.add_argument("--baseline", type=float, default=None,
                        help="accuracy of the full model (default: train it here)")
    parser.add_argument("--eval-split", choices=("test", "train"), default="test",
                        help="split whose accuracy is measured (default test)")
    parser.add_argument("--memory", default=None,
                        help="byte budget of the projection, e.g. 8GB (default: half the "
                             "available memory)")
    parser.add_argument("--include", nargs="+", default=None, metavar="GLOB",
                        help="parameters that move (glob patterns; default all trainable)")
    add_view_args(parser, batch=False)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from analyses.intrinsic_dimension.api import intrinsic_dimension
    from plotting.intrinsic_dimension import plot_intrinsic_dimension

    model = model_from_args(args, args.checkpoint)
    data = data_from_args(args)
    result = intrinsic_dimension(
        model, data, dims=args.dims, projection=args.projection, epochs=args.epochs, lr=args.lr,
        full_lr=args.full_lr, train_batch_size=args.train_batch_size, refine=args.refine,
        baseline=args.baseline, eval_split=args.eval_split, memory=args.memory, include=args.include,
        seed=args.seed, progress=args.progress, **view_kwargs(args))
    write_outputs(args, result, plot=plot_intrinsic_dimension)
    lines = [f"intrinsic dimension of {result.n_params} parameters ({result.projection}, "
             f"{len(result.dims)} runs of {result.epochs} epochs); full model "
             f"{result.eval_split} accuracy {result.full_accuracy:.4f}, chance "
             f"{result.chance_accuracy:.4f}"]
    for name, tau in result.thresholds.items():
        lines.append(f"  {name:<8} threshold {tau:.4f}: d_int90 = {result.d_int90[name]} "
                     f"(bracket {result.brackets[name]})")
    lines += [f"  d = {d:<6} accuracy {a:.4f}" for d, a in zip(result.dims, result.accuracy)]
    print("\n".join(lines))
    return 0
