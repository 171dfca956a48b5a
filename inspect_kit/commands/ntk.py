"""``inspect-kit ntk CKPT --data DATA``: the empirical NTK, its top eigenvalues, its change
against another checkpoint and the Gauss-Newton check (see :mod:`analyses.ntk`)."""

from __future__ import annotations

import argparse
import io

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

NAME = "ntk"
HELP = ("empirical neural tangent kernel: kernel (full, trace, per output) by the fastest "
        "method, top eigenvalues (matrix-free when it does not fit), change against another "
        "checkpoint, GGN check")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser, samples=256)
    parser.add_argument("--kernel", choices=("trace", "full", "per_output"), default="trace",
                        help="trace over outputs N x N (default), full N x N x O x O, or one "
                             "N x N kernel per output")
    parser.add_argument("--method", choices=("auto", "contraction", "ntvp"), default="auto",
                        help="auto (cost model; default), contraction (Jacobian contraction) or "
                             "ntvp (NTK-vector products)")
    parser.add_argument("--top-k", type=int, default=10,
                        help="top eigenvalues of the kernel (default 10; 0 skips)")
    parser.add_argument("--matrix-free", action=argparse.BooleanOptionalAction, default=None,
                        help="only top eigenvalues by Lanczos, never forming the kernel "
                             "(default: when the kernel does not fit --memory; "
                             "--no-matrix-free refuses then)")
    parser.add_argument("--memory", default=None,
                        help="byte budget of the kernel and workspace, e.g. 8GB (default: half "
                             "the available memory)")
    parser.add_argument("--compare", metavar="CKPT", default=None,
                        help="another checkpoint (e.g. at initialisation): kernel distance, "
                             "alignment and CKA on the same samples")
    parser.add_argument("--ggn-check", action="store_true",
                        help="compare GGN eigenvalues with the loss-weighted kernel's (small "
                             "models)")
    parser.add_argument("--include", nargs="+", default=None, metavar="GLOB",
                        help="parameters of the Jacobian (glob patterns; default all trainable)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="Lanczos residual bound relative to max|lambda| (matrix-free; "
                             "default 1e-6)")
    parser.add_argument("--kernel-out", metavar="OUT.npy", default=None,
                        help="write the kernel as a numpy .npy file")
    add_view_args(parser, batch=False)
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from analyses.ntk.api import ntk
    from plotting.ntk import plot_ntk

    from ..errors import OptionError

    if args.top_k < 0:
        raise OptionError(f"--top-k must be >= 0, got {args.top_k}")
    if args.kernel_out is not None and not args.kernel_out.endswith(".npy"):
        raise OptionError(f"--kernel-out {args.kernel_out}: give a file name ending in .npy")
    model = model_from_args(args, args.checkpoint)
    compare = model_from_args(args, args.compare) if args.compare else None
    data = data_from_args(args)
    result = ntk(model, data, kernel=args.kernel, method=args.method, top_k=args.top_k,
                 matrix_free=args.matrix_free, memory=args.memory, compare=compare,
                 ggn_check=args.ggn_check, include=args.include, tol=args.tol, seed=args.seed,
                 progress=args.progress, **view_kwargs(args))
    extra = {}
    if args.kernel_out:
        if result.kernel is None:
            raise OptionError("--kernel-out: the kernel was not formed (matrix-free); pass "
                              "fewer --samples or a larger --memory")
        buf = io.BytesIO()
        np.save(buf, result.kernel)
        extra[args.kernel_out] = buf.getvalue()
    write_outputs(args, result, plot=plot_ntk, extra=extra)
    c = result.costs
    lines = [f"NTK ({result.form}) of {result.n_params} parameters on {result.n_samples} samples "
             f"x {result.n_outputs} outputs by {result.method} "
             f"(predicted s: contraction {c['contraction']['seconds']:.3g}, ntvp "
             f"{c['ntvp']['seconds']:.3g})"]
    ev = np.atleast_2d(result.eigenvalues)
    for a, row in enumerate(ev):
        head = f"  output {a}: " if result.form == "per_output" else "  eigenvalues: "
        lines.append(head + ", ".join(f"{v:.6g}" for v in row))
    if result.trace is not None:
        lines.append(f"  trace = {result.trace:.6g}")
    if result.target_alignment is not None:
        lines.append(f"  kernel-target alignment (centred) = {result.target_alignment:.4f}")
    if result.change is not None:
        ch = result.change
        lines.append(f"  change vs --compare: relative Frobenius {ch['relative_frobenius']:.4g}, "
                     f"alignment {ch['alignment']:.4f}, CKA {ch['cka']:.4f}")
    if result.ggn is not None:
        lines.append(f"  GGN check ({result.ggn['loss']}): max relative difference "
                     f"{result.ggn['max_relative_difference']:.2e}")
    print("\n".join(lines))
    return 0
