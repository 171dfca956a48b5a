"""The report: which analyses run, the page's numbers and drawings against the Results, a failed
section, the Results embedded in the page, the command line, and every Result's notebook view.

Browser checks (console, network, sizes, screenshot) are in ``test_report_browser.py``.
"""

from __future__ import annotations

import math

import pytest

from inspect_kit.cli import main
from inspect_kit.errors import OptionError
from plotting.report import read
from plotting.report.plan import plan

from .report_pages import PageReader


@pytest.fixture(scope="module")
def pair(mlp_report):
    return mlp_report.a, mlp_report.b


@pytest.fixture(scope="module")
def report(mlp_report):
    return mlp_report.report, mlp_report.html, mlp_report.reader


def same(text: str | None, value: float | None) -> bool:
    """The exact value written in a data-* attribute equals ``value`` (NaN equals NaN)."""
    if value is None or text is None:
        return value is None and not text
    v = float(text)
    return (math.isnan(v) and math.isnan(value)) or v == float(value)


def test_plan_follows_the_rules(pair):
    a, b = pair
    keys = lambda p: [s.key for s in p.steps]  # noqa: E731
    assert keys(plan(a)) == ["esd"]
    skipped = dict(plan(a).skipped)
    assert skipped["Hessian spectrum"] == "needs data (--data)"
    full = plan(a, "digits", second=b)
    assert keys(full) == ["esd", "hessian", "outliers", "landscape", "lmc", "attention", "ntk"]
    assert "--with intrinsic-dimension" in dict(full.skipped)["Intrinsic dimension"]
    assert dict(full.skipped)["Symbolic formula"] == "the model is not a KAN"
    small = plan(a, "digits", max_params=100, include=["hessian"], exclude=["attention"])
    assert keys(small) == ["esd", "hessian"]
    assert "over the budget of 100" in dict(small.skipped)["Loss landscape"]
    assert dict(small.skipped)["Attention"] == "left out (--without)"
    with pytest.raises(OptionError, match="unknown analysis nope"):
        plan(a, "digits", include=["nope"])


def test_sections_and_key_numbers_equal_the_results(report, pair):
    rep, _, page = report
    assert [s.key for s in rep.sections] == ["esd", "hessian", "outliers", "landscape", "lmc",
                                             "ntk"]
    assert [s.key for s in rep.sections if s.status != "ok"] == ["outliers"]  # on purpose
    assert page.sections == ["model", *[s.key for s in rep.sections], "not-run"]
    assert "Attention" in page.section_text("not-run")  # an MLP has none: does not apply
    for s in [s for s in rep.sections if s.status == "ok"]:
        shown = page.numbers[s.key]
        expected = s.result.headline()
        assert len(shown) == len(expected) > 0
        for m in expected:
            value, se = shown[m["metric"] if m["item"] == "model" else f"{m['item']}:{m['metric']}"]
            assert same(value, m["value"]) and same(se, m["stderr"]), (s.key, m)
    hess = rep.section("hessian").result
    assert same(page.numbers["hessian"]["trace"][1], hess.trace_stderr)
    assert same(page.numbers["model"]["n_parameters"][0], sum(p.numel() for p in pair[0].parameters()))


def test_drawn_points_equal_the_results(report):
    rep, _, page = report
    hess = rep.section("hessian").result
    pts = page.charts["hessian"]["hessian-eigenvalues"]
    assert [float(p["data-y"]) for p in pts] == sorted(map(float, hess.eigenvalues), reverse=True)
    land = rep.section("landscape").result
    cells = page.charts["landscape"]["landscape-plane"]
    assert len(cells) == land.loss.size == 49
    for c in cells:
        i, j = int(c["data-i"]), int(c["data-j"])
        assert float(c["data-z"]) == land.loss[i, j]
        assert float(c["data-x"]) == land.axes[0][i] and float(c["data-y"]) == land.axes[1][j]
    esd = rep.section("esd").result
    alphas = [float(p["data-y"]) for p in page.charts["esd"]["esd-alpha"]]
    assert alphas == [r["alpha"] for r in esd.layers if r["status"] == "success"]
    lmc = rep.section("lmc").result
    loss = [float(p["data-y"]) for p in page.charts["lmc"]["lmc-loss"]]
    assert loss == [float(v) for v in lmc.curves["naive"]["loss"]["train"]]
    ntk = rep.section("ntk").result
    assert [float(p["data-y"]) for p in page.charts["ntk"]["ntk-eigenvalues"]] == \
        [float(v) for v in ntk.eigenvalues]
    # every table cell of the Hessian's table is one of its numbers
    table = {float(v) for v in page.cells["hessian"]}
    assert {float(v) for v in hess.eigenvalues} <= table


def test_every_section_has_its_figure_and_provenance(report):
    rep, _, page = report
    for s in [s for s in rep.sections if s.status == "ok"]:
        assert page.images[s.key] == 1, s.key
        text = page.section_text(s.key)
        assert f"seed {s.result.seed}" in text and "versions" in text
        assert s.result.provenance["versions"]["torch"] in text


def test_page_holds_the_results_as_json(report):
    rep, text, _ = report
    back = read.results_from_text(text)
    ok = [s for s in rep.sections if s.status == "ok"]
    assert sorted(back) == sorted(s.key for s in ok)
    for s in ok:
        assert type(back[s.key]) is type(s.result)
        assert back[s.key].to_dict() == s.result.to_dict()


def test_page_points_nowhere_outside_itself(report):
    _, text, _ = report
    body = text.split("<body>", 1)[1]
    for bad in ("http:", "https:", "//cdn", "src=\"/", "@import", "url(http"):
        assert bad not in body
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_a_failed_analysis_shows_its_error_and_the_rest_renders(report):
    rep, _, page = report
    out = rep.section("outliers")
    assert out.status == "failed" and out.error == ("OptionError", "n_classes must be >= 2, got 1")
    assert page.status["outliers"] == "failed"
    text = page.section_text("outliers")
    assert out.error[1] in text and "Traceback" in text and "n_classes" in text
    assert page.images["outliers"] == 0 and not page.numbers["outliers"]
    assert page.status["landscape"] == page.status["hessian"] == "ok"
    assert page.images["landscape"] == 1


def test_repr_html_of_each_result_shows_numbers_and_main_figure(report):
    rep, _, _ = report
    for r in [rep.info, *(s.result for s in rep.sections if s.result is not None)]:
        card = PageReader(f"<section data-section='c'>{r._repr_html_()}</section>")
        for m in r.headline():
            key = m["metric"] if m["item"] == "model" else f"{m['item']}:{m['metric']}"
            assert same(card.numbers["c"][key][0], m["value"])
        assert card.images["c"] == (1 if r.main_figure else 0), type(r).__name__


def test_to_frames_of_a_report_concatenate(report):
    import pandas as pd

    rep, _, _ = report
    frame = pd.concat([s.result.to_frame() for s in rep.sections if s.status == "ok"],
                      ignore_index=True)
    assert list(frame.columns) == ["analysis", "item", "metric", "value", "stderr", "options"]
    assert set(frame.analysis) == {"esd", "hessian", "landscape", "lmc", "ntk"}
    hess = rep.section("hessian").result
    row = frame[(frame.analysis == "hessian") & (frame.metric == "trace")]
    assert row.value.item() == hess.trace and row.stderr.item() == hess.trace_stderr
    esd = rep.section("esd").result
    first = esd.layers[0]
    row = frame[(frame.analysis == "esd") & (frame.item == f"name={first['name']}")
                & (frame.metric == "alpha")]
    assert row.value.item() == first["alpha"] and row.stderr.item() == first["sigma"]


def test_command_writes_one_page_or_nothing(tmp_path, pair, capsys):
    from inspect_kit.checkpoints import save_checkpoint

    a, _ = pair
    ckpt = tmp_path / "a.pt"
    save_checkpoint(a, ckpt)
    out = tmp_path / "r.html"
    rc = main(["report", str(ckpt), "--data", "digits", "--quick", "--samples", "32",
               "--without", "outliers", "ntk", "landscape", "--out", str(out), "--no-progress"])
    assert rc == 0 and out.exists()
    page = PageReader(out.read_text())
    assert page.sections == ["model", "esd", "hessian", "not-run"]
    assert same(page.numbers["hessian"]["n_samples"][0], 32)
    assert "report: 2 analyses ok, 0 failed" in capsys.readouterr().out
    for argv, msg in (
        ([str(ckpt), "--out", str(tmp_path / "r.pdf")], "name it *.html"),
        ([str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.html")], "missing.pt"),
        ([str(ckpt), "--max-params", "0", "--out", str(tmp_path / "z.html")], "--max-params"),
    ):
        assert main(["report", *argv, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "r.html"]
