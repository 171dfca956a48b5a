"""``inspect-kit hessian CKPT --data DATA``: Hessian eigenvalues, trace, density, blocks."""

from __future__ import annotations

import argparse

from .common import add_data_arg, add_model_args, add_output_args, data_from_args, model_from_args

NAME = "hessian"
HELP = ("loss Hessian: top/bottom eigenvalues (Lanczos), trace (Hutch++), spectral density "
        "(SLQ), per-layer blocks, optional PyHessian side by side")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser)
    parser.add_argument("--top-k", type=int, default=5,
                        help="eigenvalues per end of the spectrum (default 5; 0 skips)")
    parser.add_argument("--which", choices=("largest", "smallest", "magnitude", "both"),
                        default="largest", help="which end(s) of the spectrum (default largest)")
    parser.add_argument("--trace", action="store_true",
                        help="estimate the trace (Hutch++, --budget products)")
    parser.add_argument("--budget", type=int, default=100,
                        help="products for each trace estimate (default 100)")
    parser.add_argument("--density", action="store_true",
                        help="spectral density by stochastic Lanczos quadrature")
    parser.add_argument("--probes", type=int, default=10, help="SLQ probes (default 10)")
    parser.add_argument("--blocks", action="store_true", help="per-layer block spectra")
    parser.add_argument("--mode", choices=("eval", "train"), default="eval",
                        help="train/eval mode of the model for the Hessian (default eval)")
    parser.add_argument("--float64", action="store_true", help="compute in float64")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="split the data into batches of this size (weighted by size)")
    parser.add_argument("--backend", choices=("native", "pyhessian", "exact"), default="native",
                        help="native (default), pyhessian (adds PyHessian's numbers) or exact "
                             "(dense Hessian, small models)")
    add_output_args(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from analyses.hessian.api import hessian
    from plotting.hessian import plot_hessian

    from ..errors import OptionError
    from .common import write_outputs

    if args.top_k < 0 or args.budget < 3 or args.probes < 1:
        raise OptionError("--top-k must be >= 0, --budget >= 3 and --probes >= 1")
    model = model_from_args(args, args.checkpoint)
    bundle = data_from_args(args)
    data = bundle.split(args.split) if hasattr(bundle, "split") else bundle
    result = hessian(model, data, top_k=args.top_k, which=args.which, trace=args.trace,
                     trace_budget=args.budget, density=args.density, density_probes=args.probes,
                     blocks="layer" if args.blocks else None, mode=args.mode,
                     dtype=torch.float64 if args.float64 else None, batch_size=args.batch_size,
                     backend=args.backend, seed=args.seed)
    lines = [f"Hessian of {result.n_params} parameters on {result.n_samples} samples "
             f"({result.backend}, {result.hvp_count} HVPs)"]
    for v, r, c in zip(result.eigenvalues, result.residuals, result.converged):
        lines.append(f"  lambda = {v: .6g}   residual {r:.1e}{'' if c else '  (not converged)'}")
    if result.trace is not None:
        lines.append(f"  trace = {result.trace:.6g} +- {result.trace_stderr:.2g} "
                     f"({result.trace_method})")
    if result.density is not None:
        lines.append(f"  negative mass (lambda < -{result.density['threshold']:.2g}) = "
                     f"{100 * result.density['negative_mass']:.2f}%")
    ref = result.reference or {}
    if ref.get("eigenvalues"):
        vals = ", ".join(f"{v:.6g}" for v in ref["eigenvalues"])
        lines.append(f"  PyHessian: [{vals}], trace "
                     f"{ref.get('trace', float('nan')):.6g}, {ref.get('hvp_count')} HVPs")
    print("\n".join(lines))
    write_outputs(args, result, plot=plot_hessian)
    return 0
