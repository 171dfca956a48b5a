"""``inspect-kit landscape CKPT --data DATA``: loss landscape (line or plane) around a checkpoint."""

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

NAME = "landscape"
HELP = ("loss landscape around the weights: 1-D line or 2-D plane along filter-normalised "
        "random, PCA or interpolation directions, optimiser path overlay (Li et al. 2018)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser, n=1)
    add_data_arg(parser)
    parser.add_argument("--dims", type=int, choices=(1, 2), default=2,
                        help="1 = a line, 2 = a plane (default 2)")
    parser.add_argument("--steps", type=int, default=25,
                        help="odd number of grid points per axis (default 25)")
    parser.add_argument("--span", type=float, default=None,
                        help="half-width of the grid in direction units (default 1 for random; "
                             "1.25 x the path extent for pca; margin 0.5 for interpolation)")
    parser.add_argument("--directions", choices=("random", "pca", "interpolation"),
                        default="random",
                        help="random filter-normalised Gaussian, PCA of the trajectory, or the "
                             "line to --target")
    parser.add_argument("--target", metavar="CKPT", default=None,
                        help="second checkpoint for --directions interpolation")
    parser.add_argument("--trajectory", nargs="+", metavar="CKPT", default=None,
                        help="snapshot checkpoints in training order (default for pca: the "
                             "trajectory stored in CKPT); one kit checkpoint holding a "
                             "trajectory also works")
    parser.add_argument("--norm", choices=("filter", "layer", "none"), default="filter",
                        help="direction normalisation (default filter)")
    parser.add_argument("--ignore", choices=("biasbn", "none"), default="biasbn",
                        help="biasbn: do not perturb biases and norm parameters (default)")
    parser.add_argument("--include", nargs="+", default=None, metavar="GLOB",
                        help="parameters to perturb (glob patterns; default all trainable)")
    parser.add_argument("--buffers", choices=("follow", "keep"), default=None,
                        help="buffer policy (default: follow for interpolation, keep otherwise)")
    parser.add_argument("--engine", choices=("auto", "loop", "vmap"), default="auto",
                        help="evaluation engine (default auto: chosen by timing)")
    parser.add_argument("--log", action="store_true", help="log-spaced contour levels")
    parser.add_argument("--resume", metavar="FILE", default=None,
                        help="partial-result file: a rerun continues where it stopped")
    add_view_args(parser)
    add_output_args(parser)
    add_force_arg(parser)
    deprecated(parser, "--subset", "--samples", "samples", type=int)


def _trajectory(args: argparse.Namespace) -> list | None:
    from ..checkpoints import load_checkpoint

    if args.trajectory:
        ckpts = [load_checkpoint(p, trust=args.trust) for p in args.trajectory]
        if len(ckpts) == 1 and ckpts[0].trajectory:
            return list(ckpts[0].trajectory)
        return [c.state_dict for c in ckpts]
    if args.directions == "pca":
        traj = load_checkpoint(args.checkpoint, trust=args.trust).trajectory
        return list(traj) if traj else None
    return None


def run(args: argparse.Namespace) -> int:
    from analyses.landscape.api import landscape
    from plotting.landscape import plot_landscape

    from ..errors import OptionError

    if (args.directions == "interpolation") != (args.target is not None):
        raise OptionError("--target goes with --directions interpolation (and needs it)")
    model = model_from_args(args, args.checkpoint)
    target = model_from_args(args, args.target) if args.target else None
    data = data_from_args(args)
    result = landscape(
        model, data, dims=1 if target is not None else args.dims, steps=args.steps,
        span=args.span, directions=args.directions, trajectory=_trajectory(args), target=target,
        seed=args.seed, norm=args.norm, ignore=None if args.ignore == "none" else "biasbn",
        include=args.include, buffers=args.buffers, engine=args.engine, resume=args.resume,
        force=args.force, progress=args.progress, **view_kwargs(args))
    ms = result.meta.get("ms_per_point")
    print(f"landscape: {result.dims}-D, {args.steps} steps/axis, centre loss "
          f"{result.center_loss:.6g}, max {float(result.loss.max()):.6g}"
          + (f", {ms:.2f} ms/point ({result.meta['engine']})" if ms is not None else ""))
    write_outputs(args, result, plot=lambda r: plot_landscape(r, log=args.log))
    return 0
