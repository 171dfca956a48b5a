"""``inspect-kit hessian CKPT --data DATA``: Hessian eigenvalues, trace, density, blocks."""

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
)

NAME = "hessian"
HELP = ("loss Hessian: top/bottom eigenvalues (Lanczos), trace (Hutch++), spectral density "
        "(SLQ), per-layer blocks, optional PyHessian side by side")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser)
    parser.add_argument("--curvature", choices=("hessian", "ggn", "fisher", "empirical_fisher"),
                        default="hessian",
                        help="the matrix: hessian (default), ggn (Gauss-Newton), fisher "
                             "(Monte Carlo) or empirical_fisher")
    parser.add_argument("--mc-samples", type=int, default=1,
                        help="labels drawn per input for --curvature fisher (default 1)")
    parser.add_argument("--memory", default=None,
                        help="byte budget of the estimators' storage, e.g. 8GB (default: half "
                             "the available memory)")
    parser.add_argument("--top-k", type=int, default=5,
                        help="eigenvalues per end of the spectrum (default 5; 0 skips)")
    parser.add_argument("--which", choices=("largest", "smallest", "magnitude", "both"),
                        default="largest", help="which end(s) of the spectrum (default largest)")
    parser.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True,
                        help="estimate the trace (default on; --no-trace skips it)")
    parser.add_argument("--trace-budget", type=int, default=100,
                        help="products for each trace estimate (default 100)")
    parser.add_argument("--trace-method", choices=("hutch++", "hutchinson"), default="hutch++",
                        help="trace estimator (default hutch++)")
    parser.add_argument("--density", action=argparse.BooleanOptionalAction, default=False,
                        help="spectral density by stochastic Lanczos quadrature")
    parser.add_argument("--density-probes", type=int, default=10,
                        help="SLQ probes (default 10)")
    parser.add_argument("--density-steps", type=int, default=100,
                        help="Lanczos steps per SLQ probe (default 100)")
    parser.add_argument("--blocks", nargs="?", const="layer", choices=("layer", "param"),
                        default=None, help="per-block spectra: layer (default when given) or "
                                           "param")
    parser.add_argument("--include", nargs="+", default=None, metavar="GLOB",
                        help="parameters of the Hessian (glob patterns; default all trainable)")
    parser.add_argument("--method", choices=("iterative", "exact"), default="iterative",
                        help="iterative (Lanczos, Hutch++, SLQ; default) or exact (dense "
                             "Hessian, small models)")
    parser.add_argument("--backend", choices=("native", "pyhessian"), default="native",
                        help="native (default) or pyhessian (ours, with PyHessian's numbers "
                             "beside them)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="Lanczos residual bound relative to max|lambda| (default 1e-6)")
    add_view_args(parser)
    add_output_args(parser)
    add_force_arg(parser)
    deprecated(parser, "--budget", "--trace-budget", "trace_budget", type=int)
    deprecated(parser, "--probes", "--density-probes", "density_probes", type=int)
    deprecated(parser, "--float64", "--dtype float64", "dtype", flag="float64")
    deprecated(parser, "--mode", "--model-mode", "model_mode")


def run(args: argparse.Namespace) -> int:
    from analyses.hessian.api import hessian
    from plotting.hessian import plot_hessian

    from ..errors import OptionError
    from .common import write_outputs

    if args.top_k < 0 or args.trace_budget < 3 or args.density_probes < 1 \
            or args.density_steps < 1:
        raise OptionError("--top-k must be >= 0, --trace-budget >= 3, --density-probes >= 1 and "
                          "--density-steps >= 1")
    model = model_from_args(args, args.checkpoint)
    data = data_from_args(args)
    result = hessian(model, data, curvature=args.curvature, mc_samples=args.mc_samples,
                     memory=args.memory, top_k=args.top_k, which=args.which, trace=args.trace,
                     trace_budget=args.trace_budget, trace_method=args.trace_method,
                     density=args.density, density_probes=args.density_probes,
                     density_steps=args.density_steps, blocks=args.blocks,
                     include=args.include, method=args.method, backend=args.backend,
                     tol=args.tol, seed=args.seed, force=args.force, progress=args.progress,
                     **view_kwargs(args))
    lines = [f"{result.curvature} of {result.n_params} parameters on {result.n_samples} samples "
             f"({result.method}, {result.hvp_count} products)"]
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
