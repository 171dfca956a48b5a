"""Results back from a report page: the JSON every section embeds (years later, offline).

>>> import dataclasses
>>> from inspect_kit.results import Result
>>> from plotting.report.page import Part, render
>>> @dataclasses.dataclass(frozen=True)
... class Demo(Result):
...     x: float
>>> page = render("t", [Part("demo", "Demo", "")], data={"demo": Demo(x=2.0).dumps()})
>>> results_from_text(page)["demo"].x
2.0
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from inspect_kit.errors import InspectKitError
from inspect_kit.results import Result

_SCRIPT = re.compile(r'<script type="application/json" class="ik-result" data-section="([^"]*)">'
                     r"(.*?)</script>", re.S)


#: the modules defining the Result types a report embeds (imported so that they register)
RESULT_MODULES = ("analyses.esd.result", "analyses.hessian.result", "analyses.landscape.result",
                  "analyses.lmc.result", "analyses.attention.result", "analyses.symbolic.result",
                  "analyses.fourier.result", "analyses.ntk.result",
                  "analyses.intrinsic_dimension.result")


def results_from_text(text: str) -> dict[str, Any]:
    """Section key -> Result for every embedded Result of a page's text (a type whose module
    cannot be imported comes back as its JSON dict)."""
    import importlib

    for name in RESULT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a partial install
            pass
    out: dict[str, Any] = {}
    for key, payload in _SCRIPT.findall(text):
        data = json.loads(payload)
        cls = Result._types.get(data.get("result_type", ""))
        out[key] = cls.from_dict(data["result"]) if cls is not None else data
    return out


def results(path: str | os.PathLike) -> dict[str, Any]:
    """The Results embedded in the report page at ``path``, by section key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InspectKitError(f"cannot read report {path}: {exc}") from exc
    return results_from_text(text)
