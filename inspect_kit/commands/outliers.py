"""``inspect-kit outliers CKPT --data DATA``: the GGN's class / cross-class outliers (Papyan)."""

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

NAME = "outliers"
HELP = ("class and cross-class outliers of the Gauss-Newton spectrum of a classifier, beside "
        "the Hessian's, and the negative mass of H - G (Papyan 2019, 2020)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser)
    parser.add_argument("--n-classes", type=int, default=None,
                        help="number of classes (default: largest label + 1)")
    parser.add_argument("--extra", type=int, default=10,
                        help="eigenpairs beyond C^2 (default 10)")
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True,
                        help="SLQ density of H - G and its negative mass (default on)")
    parser.add_argument("--memory", default=None, help="byte budget, e.g. 8GB")
    add_view_args(parser, loss=False)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from analyses.hessian.outliers import outliers
    from plotting.outliers import plot_outliers

    model = model_from_args(args, args.checkpoint)
    res = outliers(model, data_from_args(args), n_classes=args.n_classes, extra=args.extra,
                   residual=args.residual, memory=args.memory, seed=args.seed,
                   progress=args.progress, **view_kwargs(args))
    c = res.counts
    print(f"{res.n_classes} classes, {res.n_params} parameters: {c['class']} class outliers, "
          f"{c['cross-class']} cross-class, {c['bulk']} bulk among the top "
          f"{len(res.ggn_eigenvalues)} GGN eigenvalues"
          + ("" if res.residual is None else
             f"; H - G negative mass {100 * res.residual['negative_mass']:.1f}%"))
    write_outputs(args, res, plot=plot_outliers)
    return 0
