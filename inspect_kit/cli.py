"""The ``inspect-kit`` command line.

``inspect-kit ANALYSIS CHECKPOINT... [--model SPEC] [--model-kwargs JSON] [--data DATA]
[--json OUT] [--plot OUT] [--seed N]``, ``inspect-kit train`` and ``inspect-kit gallery``.
Each subcommand lives in its own module of :mod:`inspect_kit.commands`; analyses and plots are
imported inside the commands. Exit status: 0 on success, 2 with a one-line message on bad
arguments, unreadable files or any other :class:`~inspect_kit.errors.InspectKitError`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from . import __version__
from .errors import InspectKitError, first_line


def _command_modules() -> list[ModuleType]:
    from . import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        try:
            mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        except Exception as exc:  # a broken command must not take the others down
            mod = _broken_command(info.name, exc)
        if all(hasattr(mod, a) for a in ("NAME", "HELP", "add_arguments", "run")):
            mods.append(mod)
    return mods


def _broken_command(name: str, exc: Exception) -> ModuleType:
    mod = ModuleType(name)
    mod.NAME = name  # type: ignore[attr-defined]
    mod.HELP = f"(unavailable: {type(exc).__name__})"  # type: ignore[attr-defined]
    mod.add_arguments = lambda p: p.add_argument("rest", nargs=argparse.REMAINDER)  # type: ignore[attr-defined]

    def run(args: argparse.Namespace) -> int:
        raise InspectKitError(f"the {name} command failed to load: {type(exc).__name__}: {exc}")

    mod.run = run  # type: ignore[attr-defined]
    return mod


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2): the message and where to find the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="inspect-kit",
        description="Understand trained PyTorch models: KAN formulas, Hessian spectra, ESD "
                    "metrics, linear mode connectivity, loss landscapes, attention maps.",
    )
    parser.add_argument("--version", action="version", version=f"inspect-kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by the console script)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings(record=True) as caught:
        code = _run(args)
    if code == 0:  # on success every warning, one line each; on failure only the error line
        for w in caught:
            print(one_line(f"inspect-kit {args.command}: warning: {w.message}"), file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; the exit status (see the module docstring)."""
    from . import distributed
    from .commands.common import check_outputs

    dist_state = None
    try:
        check_outputs(args)
        dist_state = distributed.cli_enter()  # torchrun: join the process group (None: 1 process)
        return int(args._run(args) or 0)
    except InspectKitError as exc:
        return _fail(args.command, str(exc))
    except OSError as exc:  # the environment: missing files, permissions, a full disk
        return _fail(args.command, f"{exc}")
    except MemoryError as exc:
        return _fail(args.command, f"out of memory ({first_line(exc) or 'MemoryError'}); ask "
                                   "for less (fewer steps, probes, samples) or use a machine "
                                   "with more memory")
    except KeyboardInterrupt:
        print(f"inspect-kit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("INSPECT_KIT_DEBUG"):
            raise
        if "can't allocate memory" in str(exc):  # torch's allocator: the environment, not a bug
            return _fail(args.command, f"out of memory ({first_line(exc, 200)}); ask for less or "
                                       "use a machine with more memory")
        print(one_line(f"inspect-kit {args.command}: internal error: {type(exc).__name__}: {exc} "
                       "(set INSPECT_KIT_DEBUG=1 to see the traceback, and please report it)"),
              file=sys.stderr)
        return 1
    finally:
        distributed.cli_exit(dist_state)


def one_line(text: str) -> str:
    """``text`` on one line: terminal escape codes removed, line breaks joined with spaces.

    >>> one_line("a\\n   b\\x1b[0m\\n")
    'a b'
    """
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def _fail(command: str, message: str) -> int:
    """Print the one-line error of a bad input and return exit status 2."""
    print(one_line(f"inspect-kit {command}: error: {message}"), file=sys.stderr)
    return 2


def entry() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
