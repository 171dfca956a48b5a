"""``inspect-kit symbolic CKPT --data DATA``: a KAN's edges as formulas, composed into one.

JSON keys: ``edges`` (each ``layer``, ``out``, ``in``, ``function``, ``params`` {a,b,c,d}, ``r2``,
``complexity``, ``attribution``, ``pareto``, ...), ``formula``, ``formula_r2_model``,
``formula_r2_data`` (on the fitted samples), ``formula_r2_model_held_out``,
``formula_r2_data_held_out`` (test split, else samples not drawn), ``route``, ``exact`` (only
with ``--truth``), ``seconds``, plus ``details``. ``--truth`` and ``--library`` strings are read
by a restricted parser (never evaluated as Python).
The figure is the grid of edge fits.
"""

from __future__ import annotations

import argparse

from .common import (
    add_data_arg,
    add_model_args,
    add_output_args,
    deprecated,
    model_from_args,
    write_outputs,
)

NAME = "symbolic"
HELP = "fit symbolic formulas to a KAN's edges and compose the network's formula"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser, samples=2000)
    parser.add_argument("--library", metavar="NAMES", default=None,
                        help="comma-separated primitives (pykan names, 'readme', or sympy "
                             "expressions in x); default: the full library")
    parser.add_argument("--prune", type=float, default=0.01, metavar="T",
                        help="attribution threshold: edges below it become constants (0.01)")
    parser.add_argument("--truth", metavar="EXPR", default=None,
                        help="ground-truth formula in x1..xn for the exact-recovery check; "
                             "'auto' uses the formula of a formula:NAME data set")
    parser.add_argument("--structure", action=argparse.BooleanOptionalAction, default=True,
                        help="also query the network for additive/multiplicative splits (the "
                             "separability route) and fit a sparse rational function of the "
                             "inputs (the rational route); default on")
    parser.add_argument("--rule", choices=("tolerance", "bic"), default="tolerance",
                        help="how an edge's primitive is chosen on its Pareto front")
    parser.add_argument("--sympy-seconds", type=float, default=20.0, metavar="S",
                        help="time limit of every symbolic step (composition, refits, snapping, "
                             "the exact check), in CPU seconds with a wall-clock cap of 4x; a "
                             "step that runs longer falls back; the structure search gets 4x (20)")
    add_output_args(parser)
    deprecated(parser, "--max-samples", "--samples", "samples", type=int)


def run(args: argparse.Namespace) -> int:
    from analyses.symbolic.api import symbolic
    from plotting.symbolic import edge_fits

    from ..data import DataBundle, load_data
    from ..errors import OptionError

    if args.prune < 0:
        raise OptionError(f"--prune must be >= 0, got {args.prune}")
    if not args.sympy_seconds > 0:
        raise OptionError(f"--sympy-seconds must be a positive time limit, got {args.sympy_seconds}")
    model = model_from_args(args, args.checkpoint)
    bundle = load_data(args.data, seed=args.seed)
    truth = args.truth
    if truth == "auto":
        truth = bundle.truth if isinstance(bundle, DataBundle) else None
        if truth is None:
            raise OptionError("--truth auto needs formula:NAME data; give the expression instead")
    result = symbolic(model, bundle, library=args.library, prune=args.prune, truth=truth,
                      split=args.split, samples=args.samples, seed=args.seed,
                      structure=args.structure, rule=args.rule, sympy_seconds=args.sympy_seconds,
                      progress=args.progress)

    def r2(v: float | None) -> str:
        return "-" if v is None else f"{v:.8f}"

    print(f"formula: {result.formula}  (route: {result.route})")
    held = (result.details.get("held_out") or {}).get("source")
    print(f"R^2 vs network {r2(result.formula_r2_model)}, vs data {r2(result.formula_r2_data)}"
          + (f"; held out ({held}): vs network {r2(result.formula_r2_model_held_out)}, vs data "
             f"{r2(result.formula_r2_data_held_out)}" if held else "")
          + ("" if result.exact is None else f"; exact recovery: {result.exact}"))
    write_outputs(args, result, plot=edge_fits)
    return 0
