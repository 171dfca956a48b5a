"""``inspect-kit esd CKPT``: heavy-tailed ESD metrics (alpha and friends) of every weight matrix.

Needs no data. ``CKPT`` may be a kit checkpoint, a plain state-dict ``.pt`` or a
``.safetensors`` file; tensors are read with ``torch.load(weights_only=True)`` / safetensors,
so no ``--model`` is needed (pass ``--model`` to classify tensors by their module types).
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_model_args, add_output_args, deprecated

NAME = "esd"
HELP = "per-layer ESD metrics (power-law alpha, norms, MP fit, SETOL detX); no data needed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("--method", choices=("fast", "compat"), default="fast",
                        help="fast: float64 Gram route (default); compat: WeightWatcher 0.7.7's "
                             "float64 SVD and arithmetic")
    parser.add_argument("--backend", choices=("native", "weightwatcher"), default="native",
                        help="weightwatcher: ours, with WeightWatcher's rows on the same weights "
                             "beside them")
    parser.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                        help="rows to analyse (exact names, else substrings)")
    parser.add_argument("--randomize", action=argparse.BooleanOptionalAction, default=False,
                        help="also analyse element-shuffled matrices (rand_* columns)")
    parser.add_argument("--mp-fit", action=argparse.BooleanOptionalAction, default=True,
                        help="Marchenko-Pastur bulk fit (default on)")
    parser.add_argument("--detx", action=argparse.BooleanOptionalAction, default=True,
                        help="SETOL detX / ERG columns (default on)")
    parser.add_argument("--conv", choices=("pooled", "flat", "both"), default="pooled",
                        help="conv weights: per-tap slices pooled, (out, in*k) or both")
    parser.add_argument("--layer", default=None, help="layer whose ESD the figure shows")
    parser.add_argument("--snapshots", metavar="OUT", default=None,
                        help="also analyse every training snapshot of a kit checkpoint "
                             "(inspect-kit train --snapshot-every N) and write alpha over "
                             "snapshots to OUT (.png, .svg or .pdf)")
    add_output_args(parser)
    deprecated(parser, "--mode", "--method", "method", value_map={"ww": "compat"})


def _source(args: argparse.Namespace) -> Any:
    """The model (module types known) when it can be built, else the checkpoint's tensors.

    ``--model-kwargs`` are never ignored: they must build a model that fits the file (with
    ``--model``, or over a kit checkpoint's zoo spec), otherwise the command fails.
    """
    from ..checkpoints import load_checkpoint, load_model
    from ..errors import ModelSpecError, OptionError
    from .common import model_from_args, parse_json_kwargs

    if args.model:
        return model_from_args(args, args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint, trust=args.trust)
    kwargs = parse_json_kwargs(args.model_kwargs)
    if ckpt.module is not None or ckpt.zoo_spec is not None:
        try:
            return load_model(ckpt, model_kwargs=kwargs)
        except ModelSpecError:
            if kwargs:
                raise
    elif kwargs:
        raise OptionError(f"{args.checkpoint} is a plain state dict: --model-kwargs need --model "
                          "SPEC to say which model they describe")
    return ckpt.state_dict


def run(args: argparse.Namespace) -> int:
    from analyses.esd import esd
    from plotting.esd import plot_summary

    from .common import render_figure, write_outputs

    res = esd(_source(args), method=args.method, backend=args.backend, layers=args.layers,
              mp_fit=args.mp_fit, randomize=args.randomize, detx=args.detx, conv=args.conv,
              seed=args.seed, progress=args.progress)
    s = res.summary
    print(f"esd ({res.method}, {res.backend}): {s['n_rows']} rows, {s['n_analysed']} analysed, "
          f"{s['n_skipped']} skipped, {s['n_flagged']} flagged; mean alpha "
          f"{s['mean_alpha']:.3f}, mean alpha-hat {s['mean_alpha_hat']:.3f} "
          f"({res.seconds:.2f} s)")
    if res.comparison:
        worst = max((c["delta_alpha"] for c in res.comparison), default=float("nan"))
        print(f"vs WeightWatcher: max |delta alpha| = {worst:.2e} over "
              f"{len(res.comparison)} rows")
    extra = {}
    if args.snapshots:
        from plotting.esd import plot_alpha_snapshots

        extra[args.snapshots] = render_figure(
            plot_alpha_snapshots(_snapshot_results(args)), args.snapshots)
    write_outputs(args, res, plot=lambda r: plot_summary(r, args.layer), extra=extra)
    return 0


def _snapshot_results(args: argparse.Namespace) -> list:
    """ESD of every trajectory snapshot (checked before anything is written)."""
    from analyses.esd import esd

    from ..checkpoints import load_checkpoint
    from ..errors import OptionError
    from ..progress import bar

    traj = load_checkpoint(args.checkpoint, trust=args.trust).trajectory
    if not traj:
        raise OptionError(f"{args.checkpoint} holds no training snapshots; train with "
                          "'inspect-kit train ... --snapshot-every N' (a .pt checkpoint) or drop "
                          "--snapshots")
    out = []
    with bar(len(traj), "esd snapshots") as pb:
        for sd in traj:
            out.append(esd(sd, method=args.method, mp_fit=args.mp_fit, conv=args.conv,
                           detx=args.detx, seed=args.seed, progress=False))
            pb.update(1)
    for i, r in enumerate(out):
        print(f"snapshot {i}: mean alpha {r.summary['mean_alpha']:.3f}")
    return out
