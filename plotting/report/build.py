"""Run the analyses of a report, one section each; a failure is kept as that section's error.

:func:`build_report` plans (:mod:`.plan`), runs every step under one progress bar and returns a
:class:`Report`: the model summary, a :class:`Section` per analysis (its Result, or its error
and traceback) and what was not run. Nothing is written: :meth:`Report.html` renders the page
(:mod:`.document`) and :meth:`Report.save` writes it atomically. The model is only read: every
analysis leaves it as it was (their contract), also when one fails.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from inspect_kit.errors import UnsupportedModelError
from inspect_kit.info import CheckpointInfo
from inspect_kit.progress import bar

from .plan import MAX_PARAMS, plan


@dataclasses.dataclass
class Section:
    """One analysis on the page: ``status`` "ok" (``result`` set) or "failed" (``error`` =
    (exception type, message), ``trace`` the traceback); ``options`` as passed."""

    key: str
    title: str
    status: str
    seconds: float
    options: dict[str, Any]
    result: Any = None
    error: tuple[str, str] | None = None
    trace: str = ""


@dataclasses.dataclass
class Report:
    """Everything a report page shows (see :func:`build_report`)."""

    title: str
    info: CheckpointInfo
    sections: list[Section]
    skipped: list[tuple[str, str]]
    seconds: float
    settings: dict[str, Any]

    def section(self, key: str) -> Section:
        """The section of analysis ``key`` (KeyError naming the present ones otherwise)."""
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"no section {key!r}; sections: {[s.key for s in self.sections]}")

    def html(self, progress: bool | None = None) -> str:
        """The self-contained page (figures drawn now)."""
        from .document import render_report

        return render_report(self, progress=progress)

    def save(self, path: str | os.PathLike, progress: bool | None = None) -> None:
        """Write the page to ``path`` atomically."""
        from inspect_kit.io import atomic_write

        text = self.html(progress)
        with atomic_write(path) as fh:
            fh.write(text)


def model_info(model: Any, path: str = "(in memory)") -> CheckpointInfo:
    """A :class:`CheckpointInfo` for a model that came without a checkpoint file."""
    from inspect_kit.zoo import spec_of

    return CheckpointInfo(
        path=path, zoo=spec_of(model), model_class=type(model).__name__,
        n_parameters=sum(p.numel() for p in model.parameters()),
        n_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        tensors=[{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                 for k, v in model.state_dict().items()],
        trajectory_length=0)


def build_report(model: Any, data: Any = None, *, second: Any = None,
                 info: CheckpointInfo | None = None, title: str | None = None,
                 include: Iterable[str] = (), exclude: Iterable[str] = (), quick: bool = False,
                 max_params: int = MAX_PARAMS,
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 progress: bool | None = None, **shared: Any) -> Report:
    """Run every analysis that applies to ``model`` and collect the sections.

    ``data``: any data form (a spec such as ``"digits"``, a bundle, ``(x, y)``); ``second``: a
    second model of the same architecture (LMC); ``info``: the checkpoint's summary (default:
    one made from the model); ``include``/``exclude``/``quick``/``max_params``/``options``: see
    :mod:`.plan`; ``shared``: options given to every analysis that takes them (``seed``,
    ``samples``, ``split``, ``model_mode``, ``dtype``, ``device``, ``loss``, ``batch_size``,
    ``memory``).
    """
    start = time.perf_counter()
    if isinstance(data, str):
        from inspect_kit.data import load_data

        data = load_data(data, seed=shared.get("seed") or 0)
    info = info or model_info(model)
    the_plan = plan(model, data, second=second, include=include, exclude=exclude, quick=quick,
                    max_params=max_params, options=options, shared=shared)
    sections: list[Section] = []
    skipped = list(the_plan.skipped)
    with bar(len(the_plan.steps), "report", progress) as pb:
        for step in the_plan.steps:
            pb.set_postfix_str(step.key)
            t0 = time.perf_counter()
            try:
                result = step.run()
            except UnsupportedModelError as exc:
                if not step.optional:
                    sections.append(_failed(step, exc, time.perf_counter() - t0))
                else:  # e.g. no attention captured: the first clause of the message says so
                    skipped.append((step.title, "does not apply: " + str(exc).split(":")[0]))
            except Exception as exc:  # one failed analysis must not take the page down
                sections.append(_failed(step, exc, time.perf_counter() - t0))
            else:
                sections.append(Section(step.key, step.title, "ok", time.perf_counter() - t0,
                                        step.options, result=result))
            pb.update(1)
    settings = {"quick": quick, "max_params": max_params, "include": list(include),
                "exclude": list(exclude), "data": getattr(data, "name", None) or
                (None if data is None else type(data).__name__),
                "second": None if second is None else type(second).__name__,
                **{k: v for k, v in shared.items() if v is not None}}
    return Report(title or f"inspect-kit report: {info.path}", info, sections, skipped,
                  time.perf_counter() - start, settings)


def _failed(step: Any, exc: BaseException, seconds: float) -> Section:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return Section(step.key, step.title, "failed", seconds, step.options,
                   error=(type(exc).__name__, msg), trace=traceback.format_exc())
