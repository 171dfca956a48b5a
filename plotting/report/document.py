"""A :class:`~plotting.report.build.Report` as one page: the model summary, one part per
analysis (its view, or its error), what did not run, the Results as JSON and the versions.

A Result's JSON is embedded when it is at most :data:`MAX_EMBED` characters (the NTK kernel of
many samples is not); :func:`plotting.report.read.results` reads them back.
"""

from __future__ import annotations

from typing import Any

from inspect_kit.progress import bar
from inspect_kit.provenance import versions

from . import html as H
from .page import Part, render
from .views import body

#: Results whose JSON is longer than this are not embedded in the page
MAX_EMBED = 1_000_000


def _summary(report: Any) -> str:
    """The model summary part: the checkpoint, the architecture, counts and tensors."""
    return body(report.info, figure=False)


def _failed(section: Any) -> str:
    kind, message = section.error or ("Error", "")
    return (H.error(kind, message, section.trace)
            + H.details("options of the call", H.keyvalue(
                {k: v for k, v in section.options.items()}), cls="prov"))


def _meta(report: Any) -> str:
    ok = sum(s.status == "ok" for s in report.sections)
    failed = len(report.sections) - ok
    info = report.info
    return (f"{H.esc(info.model_class)} · {info.n_parameters:,} parameters · {ok} analyses"
            + (f", {failed} failed" if failed else "") + f" · {report.seconds:.1f} s")


def _settings(report: Any) -> str:
    env = versions(("scipy", "matplotlib", "pandas", "weightwatcher", "pyhessian"))
    return H.details("report settings and library versions",
                     "<h4>settings</h4>" + H.keyvalue(report.settings)
                     + "<h4>versions</h4>" + H.keyvalue(env), cls="prov")


def render_report(report: Any, progress: bool | None = None) -> str:
    """The page of ``report`` (figures are drawn here, one progress step per section)."""
    parts = [Part("model", "Model", _summary(report))]
    data: dict[str, str] = {}
    with bar(len(report.sections), "report figures", progress) as pb:
        for s in report.sections:
            if s.status == "ok":
                parts.append(Part(s.key, s.title, body(s.result), "ok", s.seconds))
                text = s.result.dumps()
                if len(text) <= MAX_EMBED:
                    data[s.key] = text
            else:
                parts.append(Part(s.key, s.title, _failed(s), "failed", s.seconds))
            pb.update(1)
    return render(report.title, parts, meta=_meta(report), intro=_settings(report),
                  skipped=report.skipped, data=data)
