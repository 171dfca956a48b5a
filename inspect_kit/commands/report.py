"""``inspect-kit report CKPT [--data DATA] [--second CKPT] [--with NAME ...] --out report.html``:
every analysis that applies, on one self-contained HTML page.

Which analyses run and with which budgets is :mod:`plotting.report.plan`'s decision (``--with``
adds the opt-in ones or lifts the parameter budget, ``--without`` leaves some out, ``--quick``
uses tiny budgets). A failed analysis becomes a section showing its error; the page is written
all at once (nothing is left half-written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OptionError
from .common import (
    add_data_arg,
    add_model_args,
    add_progress_arg,
    add_view_args,
    view_kwargs,
)

NAME = "report"
HELP = ("run every analysis that applies to a checkpoint and write one self-contained HTML page "
        "(figures, tables, key numbers with uncertainty, options, seeds, versions, timings)")

#: analyses named on the command line (dashes or underscores)
CHOICES = ("esd", "hessian", "outliers", "landscape", "lmc", "attention", "symbolic", "fourier",
           "ntk", "intrinsic-dimension", "intrinsic_dimension")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_arg(parser, required=False)
    parser.add_argument("--second", metavar="CKPT", default=None,
                        help="a second checkpoint of the same architecture: adds linear mode "
                             "connectivity")
    parser.add_argument("--with", dest="include", nargs="+", default=[], metavar="NAME",
                        choices=CHOICES,
                        help="also run these (intrinsic-dimension is opt-in) or run them over "
                             "the parameter budget")
    parser.add_argument("--without", dest="exclude", nargs="+", default=[], metavar="NAME",
                        choices=CHOICES, help="leave these analyses out")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets (a smoke test: seconds, rough numbers)")
    parser.add_argument("--max-params", type=int, default=None, metavar="N",
                        help="curvature analyses (hessian, outliers, landscape, ntk) run on "
                             "models up to N parameters (default 2,000,000)")
    parser.add_argument("--memory", default=None,
                        help="byte budget of the curvature analyses, e.g. 8GB (default: half "
                             "the available memory)")
    add_view_args(parser)
    parser.add_argument("--out", metavar="OUT", default="report.html",
                        help="the page to write (.html; default report.html)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice "
                                                            "(default 0)")
    add_progress_arg(parser)


def _check(args: argparse.Namespace) -> None:
    if Path(args.out).suffix.lower() not in (".html", ".htm"):
        raise OptionError(f"--out {args.out}: a report is an HTML page; name it *.html")
    if args.max_params is not None and args.max_params < 1:
        raise OptionError(f"--max-params must be a positive integer, got {args.max_params}")


def run(args: argparse.Namespace) -> int:
    from plotting.report.build import build_report
    from plotting.report.plan import MAX_PARAMS

    from ..checkpoints import load_checkpoint
    from ..info import CheckpointInfo
    from ..io import write_all
    from .common import data_from_args, model_from_args

    _check(args)
    ckpt = load_checkpoint(args.checkpoint, trust=args.trust)
    model = model_from_args(args, args.checkpoint)
    second = model_from_args(args, args.second) if args.second else None
    data = data_from_args(args) if args.data else None
    if data is not None:  # bad data fails every section; refuse it once, up front
        from ..view.batches import check_finite, to_batches
        check_finite(to_batches(data, split=args.split), f"data of split {args.split!r}")
    report = build_report(
        model, data, second=second, info=CheckpointInfo.of(ckpt, model),
        include=args.include, exclude=args.exclude, quick=args.quick,
        max_params=args.max_params or MAX_PARAMS, progress=args.progress, seed=args.seed,
        memory=args.memory, **view_kwargs(args))
    report.settings.update(checkpoint=args.checkpoint, data=args.data, second=args.second)
    page = report.html(progress=args.progress).encode("utf-8")
    write_all({args.out: page})
    for s in report.sections:
        if s.status == "failed":
            print(f"inspect-kit report: warning: {s.key} failed: {s.error[0]}: {s.error[1]}",
                  file=sys.stderr)
    ok = sum(s.status == "ok" for s in report.sections)
    print(f"report: {ok} analyses ok, {len(report.sections) - ok} failed, "
          f"{len(report.skipped)} not run; {len(page) / 1e6:.2f} MB in {report.seconds:.1f} s "
          f"-> {args.out}")
    return 0
