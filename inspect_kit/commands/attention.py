"""``inspect-kit attention CKPT --data DATA [--index I] [--query Q] [--[no-]rollout] [--policy P]
--json OUT --plot OUT``: attention maps, per-head statistics and rollout (see
:mod:`analyses.attention`)."""

from __future__ import annotations

import argparse

from .common import (
    add_data_arg,
    add_model_args,
    add_output_args,
    add_view_args,
    data_from_args,
    deprecated,
    model_from_args,
    view_kwargs,
    write_outputs,
)

NAME = "attention"
HELP = "attention maps per layer/head, entropy, distance, negative mass, rollout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser, samples=64)
    parser.add_argument("--index", type=int, default=0,
                        help="input (among the drawn samples) whose maps are stored and drawn "
                             "(default 0)")
    parser.add_argument("--query", type=int, default=None,
                        help="query token of the maps and the rollout: a position, negative "
                             "from the last real token (-1 = last); default: the last real "
                             "token of a causal model, else the first (CLS)")
    parser.add_argument("--rollout", action=argparse.BooleanOptionalAction, default=None,
                        help="attention rollout (Abnar & Zuidema 2020); default: whenever it "
                             "is defined (global self-attention, not Swin windows)")
    parser.add_argument("--policy", choices=("raw", "clamp", "abs", "renormalise"), default=None,
                        help="how rollout treats non-softmax attention (required for it, e.g. "
                             "Fourier-KArAt)")
    parser.add_argument("--head-fusion", choices=("mean", "max", "min"), default="mean",
                        help="rollout head fusion (default mean)")
    parser.add_argument("--discard-ratio", type=float, default=0.0,
                        help="rollout: share of smallest entries zeroed per layer (default 0)")
    parser.add_argument("--residual", type=float, default=0.5,
                        help="rollout: weight of the identity (residual) path (default 0.5)")
    add_view_args(parser, batch=False, loss=False)
    add_output_args(parser)
    deprecated(parser, "--max-samples", "--samples", "samples", type=int)


def run(args: argparse.Namespace) -> int:
    from analyses.attention.api import attention
    from plotting.attention import plot_summary

    model = model_from_args(args, args.checkpoint)
    data = data_from_args(args)
    result = attention(model, data, index=args.index, query=args.query, rollout=args.rollout,
                       policy=args.policy,
                       head_fusion=args.head_fusion, discard_ratio=args.discard_ratio,
                       residual=args.residual, seed=args.seed, progress=args.progress,
                       **view_kwargs(args))
    write_outputs(args, result, plot=plot_summary)
    print(f"{result.kind}: {result.seq_len} tokens, query token {result.query}"
          + (" (causal)" if result.causal else "")
          + (f"; rollout: {result.rollout['reading']}" if result.rollout else ""))
    for lay in result.layers:
        print(f"{lay.name:<24} {lay.family:<8} heads={lay.heads} "
              f"entropy={lay.entropy.mean():.3f} negative_mass={lay.negative_mass.mean():.3f} "
              f"row_sum_dev={lay.row_sum_deviation.mean():.3g}")
    return 0
