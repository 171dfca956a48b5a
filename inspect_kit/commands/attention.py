"""``inspect-kit attention CKPT --data DATA [--index I] [--rollout] [--policy P] --json OUT
--plot OUT``: attention maps, per-head statistics and rollout (see :mod:`analyses.attention`)."""

from __future__ import annotations

import argparse

from .common import (
    add_data_arg,
    add_model_args,
    add_output_args,
    data_from_args,
    model_from_args,
    write_outputs,
)

NAME = "attention"
HELP = "attention maps per layer/head, entropy, distance, negative mass, rollout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser)
    add_output_args(parser)
    parser.add_argument("--index", type=int, default=0,
                        help="input whose maps are stored and drawn (default 0)")
    parser.add_argument("--rollout", action="store_true",
                        help="compute attention rollout (Abnar & Zuidema 2020)")
    parser.add_argument("--policy", choices=("raw", "clamp", "abs", "renormalise"), default=None,
                        help="how rollout treats non-softmax attention (required for it, e.g. "
                             "Fourier-KArAt)")
    parser.add_argument("--head-fusion", choices=("mean", "max", "min"), default="mean",
                        help="rollout head fusion (default mean)")
    parser.add_argument("--discard-ratio", type=float, default=0.0,
                        help="rollout: share of smallest entries zeroed per layer (default 0)")
    parser.add_argument("--max-samples", type=int, default=64,
                        help="inputs used for the per-head statistics (default 64)")


def run(args: argparse.Namespace) -> int:
    from analyses.attention.api import attention
    from plotting.attention import plot_summary

    model = model_from_args(args, args.checkpoint)
    data = data_from_args(args)
    result = attention(model, data, index=args.index, rollout=args.rollout, policy=args.policy,
                       head_fusion=args.head_fusion, discard_ratio=args.discard_ratio,
                       max_samples=args.max_samples, split=args.split)
    write_outputs(args, result, plot=plot_summary)
    for lay in result.layers:
        print(f"{lay.name:<24} {lay.family:<8} heads={lay.heads} "
              f"entropy={lay.entropy.mean():.3f} negative_mass={lay.negative_mass.mean():.3f} "
              f"row_sum_dev={lay.row_sum_deviation.mean():.3g}")
    return 0
