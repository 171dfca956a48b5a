"""Reports of a KAN (symbolic formula), a ViT (attention), a modular-addition model (Fourier
audit) and the opt-in intrinsic dimension: the analysis that fits the model runs, and its page
shows the Result's own numbers; every Result type shows itself in a notebook."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inspect_kit.results import Result
from inspect_kit.testing import assert_untouched
from inspect_kit.zoo import build
from plotting.report.build import build_report

from .report_pages import PageReader

LIGHT = ["hessian", "outliers", "landscape", "ntk"]  # covered by test_report.py


def report_of(model, data, **kw):
    with assert_untouched(model):
        rep = build_report(model, data, quick=True, progress=False, exclude=LIGHT, **kw)
        page = PageReader(rep.html(progress=False))
    return rep, page


def check_numbers(page, section):
    for m in section.result.headline():
        key = m["metric"] if m["item"] == "model" else f"{m['item']}:{m['metric']}"
        text = page.numbers[section.key][key][0]
        assert (np.isnan(float(text)) and np.isnan(m["value"])) or float(text) == m["value"]


@pytest.fixture(scope="module")
def kan_report():
    return report_of(build("kan", width=[2, 3, 1], seed=0), "formula:exp_sin")


def test_kan_gets_its_formula(kan_report):
    rep, page = kan_report
    sym = rep.section("symbolic")
    assert sym.status == "ok" and [s.key for s in rep.sections] == ["esd", "symbolic"]
    check_numbers(page, sym)
    assert sym.result.formula in page.section_text("symbolic")
    assert page.images["symbolic"] == 1


def test_vit_gets_attention():
    rep, page = report_of(build("vit", dim=16, depth=1, heads=2, seed=0), "digits")
    att = rep.section("attention")
    assert att.status == "ok"
    check_numbers(page, att)
    drawn = [float(p["data-y"]) for p in page.charts["attention"]["attention-entropy"]]
    assert drawn == [float(v) for lay in att.result.layers for v in lay.entropy]


def test_modadd_gets_the_fourier_audit():
    rep, page = report_of(build("modadd", p=13, d=8, width=16, seed=0), "modadd:13")
    four = rep.section("fourier")
    assert four.status == "ok"
    check_numbers(page, four)
    drawn = [float(p["data-y"]) for p in page.charts["fourier"]["fourier-embedding"]]
    assert drawn == [float(v) for v in four.result.embedding_spectrum[1:]]
    assert "Attention" in page.section_text("not-run")


def test_intrinsic_dimension_only_when_asked():
    model = build("mlp", sizes=[64, 8, 10], seed=0)
    rep, page = report_of(model, "digits", include=["intrinsic_dimension"])
    idim = rep.section("intrinsic_dimension")
    assert idim.status == "ok" and idim.options["dims"] == [4, 16]
    check_numbers(page, idim)
    drawn = [float(p["data-y"]) for p in page.charts["intrinsic_dimension"]["id-accuracy"]
             if p["data-tip"].startswith("accuracy")]
    assert drawn == [float(v) for v in idim.result.accuracy]


def test_every_result_type_shows_itself(kan_report):
    from analyses.esd.quality import alpha_vs_quality
    from inspect_kit.kan.attribution import attribute, prune_mask
    from inspect_kit.kan.sampling import sample_edges

    rep, _ = kan_report
    model, data = build("kan", width=[2, 3, 1], seed=0), "formula:exp_sin"
    att = attribute(model, data, knockout=False)
    esd = rep.section("esd").result
    extra = [att, prune_mask(att), sample_edges(model, data),
             alpha_vs_quality([esd, esd, esd], [0.1, 0.2, 0.3])]
    for r in [rep.info, *(s.result for s in rep.sections), *extra]:
        html = r._repr_html_()
        card = PageReader(f"<section data-section='c'>{html}</section>")
        assert html.startswith("<style>") and type(r).__name__ in html
        assert len(card.numbers["c"]) == len(r.headline())
        assert card.images["c"] == (1 if r.main_figure else 0), type(r).__name__


def test_a_result_without_figure_or_rows_still_shows():
    @dataclasses.dataclass(frozen=True)
    class Bare(Result):
        x: float

    html = Bare(x=1.0)._repr_html_()
    assert "Bare" in html and "<img" not in html
