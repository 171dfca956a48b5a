"""``inspect-kit esd CKPT``: heavy-tailed ESD metrics (alpha and friends) of every weight matrix.

Needs no data. ``CKPT`` may be a kit checkpoint, a plain state-dict ``.pt`` or a
``.safetensors`` file; tensors are read with ``torch.load(weights_only=True)`` / safetensors,
so no ``--model`` is needed (pass ``--model`` to classify tensors by their module types).
"""

from __future__ import annotations

import argparse

from .common import add_model_args, add_output_args

NAME = "esd"
HELP = "per-layer ESD metrics (power-law alpha, norms, MP fit, SETOL detX); no data needed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("--mode", choices=("fast", "ww", "compat"), default="fast",
                        help="fast: float64 Gram route (default); ww/compat: WeightWatcher "
                             "0.7.7's float64 SVD and arithmetic")
    parser.add_argument("--backend", choices=("native", "weightwatcher"), default="native",
                        help="weightwatcher: run WeightWatcher itself and compare (side by side)")
    parser.add_argument("--randomize", action="store_true",
                        help="also analyse element-shuffled matrices (rand_* columns)")
    parser.add_argument("--no-mp-fit", action="store_true", help="skip the Marchenko-Pastur fit")
    parser.add_argument("--conv", choices=("pooled", "flat", "both"), default="pooled",
                        help="conv weights: per-tap slices pooled, (out, in*k) or both")
    parser.add_argument("--layer", default=None, help="layer whose ESD the figure shows")
    parser.add_argument("--snapshots", metavar="OUT", default=None,
                        help="also analyse every training snapshot of a kit checkpoint "
                             "(inspect-kit train --snapshot-every N) and write alpha over "
                             "snapshots to OUT (.png, .svg or .pdf)")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    from analyses.esd import esd
    from analyses.esd.matrices import load_state_dict
    from plotting.esd import plot_summary

    from ..errors import InspectKitError
    from .common import model_from_args, write_outputs

    if args.model:
        source = model_from_args(args, args.checkpoint)
    else:
        try:  # a kit checkpoint of a zoo model rebuilds the model (module types known)
            source = model_from_args(args, args.checkpoint)
        except (InspectKitError, Exception):  # noqa: BLE001 - any failure: read the tensors
            source = load_state_dict(args.checkpoint)
    mode = "compat" if args.mode in ("ww", "compat") else "fast"
    res = esd(source, mode=mode, backend=args.backend, mp_fit=not args.no_mp_fit,
              randomize=args.randomize, conv=args.conv, seed=args.seed)
    s = res.summary
    print(f"esd ({res.backend}, {res.mode}): {s['n_rows']} rows, {s['n_analysed']} analysed, "
          f"{s['n_skipped']} skipped, {s['n_flagged']} flagged; mean alpha "
          f"{s['mean_alpha']:.3f}, mean alpha-hat {s['mean_alpha_hat']:.3f} "
          f"({res.seconds:.2f} s)")
    if res.comparison:
        worst = max((c["delta_alpha"] for c in res.comparison), default=float("nan"))
        print(f"vs this kit's compat mode: max |delta alpha| = {worst:.2e} over "
              f"{len(res.comparison)} rows")
    snaps = _snapshot_results(args, mode) if args.snapshots else None
    write_outputs(args, res, plot=lambda r: plot_summary(r, args.layer))
    if snaps is not None:
        _write_snapshot_figure(args, snaps)
    return 0


def _snapshot_results(args: argparse.Namespace, mode: str) -> list:
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
            out.append(esd(sd, mode=mode, mp_fit=not args.no_mp_fit, conv=args.conv,
                           seed=args.seed, progress=False))
            pb.update(1)
    for i, r in enumerate(out):
        print(f"snapshot {i}: mean alpha {r.summary['mean_alpha']:.3f}")
    return out


def _write_snapshot_figure(args: argparse.Namespace, results: list) -> None:
    import matplotlib.pyplot as plt

    from plotting.esd import plot_alpha_snapshots

    from ..distributed import is_main
    from ..io import save_figure

    if not is_main():
        return
    fig = plot_alpha_snapshots(results)
    try:
        save_figure(fig, args.snapshots)
    finally:
        plt.close(fig)
