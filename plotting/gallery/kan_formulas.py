"""Gallery section: KAN edges to formulas on known formulas (filled in with the symbolic fitter)."""

from __future__ import annotations

from .context import Gallery


def render(g: Gallery) -> None:
    from . import symbolic_section

    symbolic_section.render(g)
