"""``inspect-kit gallery``: train small seeded models on bundled data, run every analysis on them,
and write the figures with their key numbers to ``gallery/README.md``.

The gallery lives on the top floor (it reaches down into ``analyses`` and ``inspect_kit``).
Trained checkpoints are cached in ``<out>/.cache/`` (kit checkpoint format, with trajectories),
so a second run only re-renders. ``quick=True`` uses tiny budgets (CI's smoke test).
"""

from __future__ import annotations

import os
from pathlib import Path

from .context import Gallery

#: the sections, in README order: module name in plotting.gallery, title
SECTIONS: list[tuple[str, str]] = [
    ("kan_formulas", "KAN edges to formulas"),
    ("mlp_digits", "Two MLPs on digits: curvature, spectra, connectivity, landscapes"),
    ("kan_vs_mlp", "A KAN classifier beside the MLP"),
    ("vit_karat", "Tiny ViT: softmax vs Fourier-KArAt attention"),
    ("modadd", "Grokking modular addition: Fourier features"),
    ("ntk", "Empirical neural tangent kernel of the digits MLP"),
    ("intrinsic_dimension", "Intrinsic dimension of the digits MLP"),
]


def build_gallery(out: str | os.PathLike = "gallery", *, quick: bool = False,
                  progress: bool | None = None, sections: list[str] | None = None) -> Path:
    """Render the gallery into ``out`` and return the path of its README."""
    import importlib

    g = Gallery(Path(out), quick=quick, progress=progress)
    chosen = [s for s in SECTIONS if sections is None or s[0] in sections]
    for i, (mod_name, title) in enumerate(chosen, 1):
        g.begin_section(title, f"{i}/{len(chosen)}")
        importlib.import_module(f"{__name__}.{mod_name}").render(g)
    return g.write_readme()


__all__ = ["Gallery", "build_gallery", "SECTIONS"]
