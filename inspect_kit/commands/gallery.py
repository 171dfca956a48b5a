"""``inspect-kit gallery``: the main job (see :mod:`plotting.gallery`)."""

from __future__ import annotations

import argparse

from .common import add_progress_arg

NAME = "gallery"
HELP = ("train small seeded models on bundled data, run every analysis, write figures and "
        "gallery/README.md")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="gallery", help="output folder (default: gallery/)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    parser.add_argument("--section", action="append", default=None,
                        help="render only these sections (repeatable): kan_formulas, mlp_digits, "
                             "kan_vs_mlp, vit_karat, modadd")
    add_progress_arg(parser)


def run(args: argparse.Namespace) -> int:
    from plotting.gallery import SECTIONS, build_gallery

    from ..errors import OptionError

    known = [name for name, _ in SECTIONS]
    unknown = [s for s in args.section or [] if s not in known]
    if unknown:
        raise OptionError(f"unknown --section {', '.join(unknown)}; use {', '.join(known)}")
    readme = build_gallery(args.out, quick=args.quick, progress=args.progress,
                           sections=args.section)
    print(f"gallery written: {readme}")
    return 0
