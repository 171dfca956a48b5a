"""The contract battery: one set of checks run against every analysis entry point.

In the spirit of scikit-learn's ``parametrize_with_checks`` and captum's generated hook-leak
tests. For each of the six entry points (hessian, landscape, lmc, esd, attention, symbolic):

* the model is untouched on success, and on a failure injected midway (a forward that raises on
  a later call, a loss that turns NaN);
* the command line's ``--json`` loads back with ``Result.load`` (the same format as
  ``Result.save``) and re-plots;
* ``progress=False`` prints nothing;
* an unknown option value raises ``OptionError`` naming the allowed values;
* float64 works on a model with BatchNorm (the analyses that take data);
* every Result records its provenance (options, seed, seconds, versions) in the same field;
* CLI defaults equal API defaults for every flag named like an option.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspect_kit import zoo
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import build_parser, main
from inspect_kit.errors import InspectKitError, OptionError
from inspect_kit.results import Result
from inspect_kit.testing import assert_untouched


def _digits(n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    from inspect_kit.data import load_data

    b = load_data("digits")
    return b.x_train[:n], b.y_train[:n]


def _bn_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


def _kan_data(n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 2, generator=g) * 2 - 1
    return x, (x[:, :1] ** 2 + torch.sin(x[:, 1:]))


@dataclasses.dataclass
class Entry:
    """How to call one entry point in this battery."""

    name: str
    run: Callable[..., Result]          # run(models, data, **options)
    models: Callable[[], list[nn.Module]]
    data: Callable[[], Any]
    bad: dict[str, Any]                 # an unknown option value
    cli: Callable[[str, list[str], str], list[str]]  # (json path, ckpts, data spec) -> argv
    plot: Callable[[Result], Any]
    takes_loss: bool = True
    float64: bool = True


def _hessian(models, data, **kw):
    from analyses.hessian.api import hessian

    kw.setdefault("progress", False)
    return hessian(models[0], data, top_k=2, trace_budget=9, **kw)


def _landscape(models, data, **kw):
    from analyses.landscape.api import landscape

    kw.setdefault("progress", False)
    return landscape(models[0], data, dims=1, steps=5, **kw)


def _lmc(models, data, **kw):
    from analyses.lmc.api import lmc

    kw.setdefault("progress", False)
    return lmc(models[0], models[1], data, steps=3, refine=False, **kw)


def _esd(models, data, **kw):
    from analyses.esd.api import esd

    kw.setdefault("progress", False)
    kw.pop("loss", None)
    return esd(models[0], n_boot=10, **kw)


def _attention(models, data, **kw):
    from analyses.attention.api import attention

    kw.setdefault("progress", False)
    kw.pop("loss", None)
    return attention(models[0], data, samples=6, **kw)


def _symbolic(models, data, **kw):
    from analyses.symbolic.api import symbolic

    kw.setdefault("progress", False)
    kw.pop("loss", None)
    return symbolic(models[0], data, library="x,x^2,sin", samples=120, structure=False,
                    simplify_seconds=1.0, **kw)


def _plots():
    from plotting.attention import plot_summary as att
    from plotting.esd import plot_summary as esd_plot
    from plotting.hessian import plot_hessian
    from plotting.landscape import plot_landscape
    from plotting.lmc import plot_lmc
    from plotting.symbolic import edge_fits

    return {"hessian": plot_hessian, "landscape": plot_landscape, "lmc": plot_lmc,
            "esd": esd_plot, "attention": att, "symbolic": edge_fits}


ENTRIES = {
    "hessian": Entry("hessian", _hessian, lambda: [_bn_mlp()], _digits,
                     {"which": "middle"},
                     lambda j, c, d: ["hessian", c[0], "--data", d, "--top-k", "1",
                                      "--trace-budget", "6", "--json", j], None),
    "landscape": Entry("landscape", _landscape, lambda: [_bn_mlp()], _digits,
                       {"directions": "sideways"},
                       lambda j, c, d: ["landscape", c[0], "--data", d, "--dims", "1",
                                        "--steps", "3", "--json", j], None),
    "lmc": Entry("lmc", _lmc, lambda: [_bn_mlp(0), _bn_mlp(1)], _digits,
                 {"matching": "hungarian"},
                 lambda j, c, d: ["lmc", c[0], c[1], "--data", d, "--steps", "3", "--json", j],
                 None),
    "esd": Entry("esd", _esd, lambda: [zoo.build("mlp", sizes=(64, 48, 10), seed=0)],
                 lambda: None, {"method": "slow"},
                 lambda j, c, d: ["esd", c[0], "--json", j], None, takes_loss=False,
                 float64=False),
    "attention": Entry("attention", _attention,
                       lambda: [zoo.build("vit", dim=16, depth=1, heads=2, seed=0)], _digits,
                       {"head_fusion": "median"},
                       lambda j, c, d: ["attention", c[0], "--data", d, "--samples", "4",
                                        "--json", j], None, takes_loss=False),
    "symbolic": Entry("symbolic", _symbolic,
                      lambda: [zoo.build("kan", width=[2, 2, 1], seed=0)], _kan_data,
                      {"rule": "shortest"},
                      lambda j, c, d: ["symbolic", c[0], "--data", "formula:exp_sin",
                                       "--library", "x,x^2,sin", "--samples", "100",
                                       "--no-structure", "--json", j], None,
                      takes_loss=False, float64=False),
}
NAMES = list(ENTRIES)


@contextlib.contextmanager
def _all_untouched(models: list[nn.Module]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for m in models:
            stack.enter_context(assert_untouched(m))
        yield


@contextlib.contextmanager
def _forward_fails_after(model: nn.Module, calls: int) -> Iterator[None]:
    """Every forward of ``model`` raises from call number ``calls`` on (a failure midway)."""
    count = {"n": 0}

    def hook(mod: nn.Module, args: Any) -> None:
        count["n"] += 1
        if count["n"] > calls:
            raise RuntimeError("injected failure midway")

    h = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        h.remove()


@pytest.mark.parametrize("name", NAMES)
def test_untouched_on_success_and_provenance_recorded(name):
    e = ENTRIES[name]
    models = e.models()
    with _all_untouched(models):
        res = e.run(models, e.data(), seed=3)
    prov = res.provenance
    assert prov["analysis"] == name and prov["seed"] == 3 and prov["seconds"] > 0
    assert prov["options"]["seed"] == 3 and "torch" in prov["versions"]
    assert res.seconds == prov["seconds"] and res.seed == 3


@pytest.mark.parametrize("name", NAMES)
def test_untouched_after_a_failure_injected_midway(name, monkeypatch):
    e = ENTRIES[name]
    models = e.models()
    if name == "esd":  # no forward pass: fail in the middle of the per-matrix loop
        import analyses.esd.api as api

        real, count = api.analyse_matrix, {"n": 0}

        def flaky(*a, **k):
            count["n"] += 1
            if count["n"] > 1:
                raise RuntimeError("injected failure midway")
            return real(*a, **k)

        monkeypatch.setattr(api, "analyse_matrix", flaky)
        ctx = contextlib.nullcontext()
    elif name == "symbolic":  # the adapter evaluates edges, not the module: fail in the fit
        import analyses.symbolic.api as api

        def broken(*a, **k):
            raise RuntimeError("injected failure midway")

        monkeypatch.setattr(api, "fit_edges", broken)
        ctx = contextlib.nullcontext()
    else:  # hessian: 2 forwards (the loss check, the cached graph); attention: 1
        ctx = _forward_fails_after(models[0], {"hessian": 1, "attention": 0}.get(name, 3))
    with ctx:  # the hook is registered before the snapshot and removed after the check
        with _all_untouched(models), pytest.raises((RuntimeError, InspectKitError)):
            e.run(models, e.data())


@pytest.mark.parametrize("name", [n for n in NAMES if ENTRIES[n].takes_loss])
def test_untouched_when_the_loss_turns_nan(name):
    e = ENTRIES[name]
    models = e.models()
    count = {"n": 0}

    def turning(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        count["n"] += 1
        value = F.cross_entropy(out, y)
        return value * float("nan") if count["n"] > 2 else value

    with _all_untouched(models), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = e.run(models, e.data(), loss=turning)
        except InspectKitError:
            return  # refused with a clear error: fine
    if name == "landscape":  # the points after the turn are NaN, and the figure shows holes
        assert any(math.isnan(v) for v in res.loss.ravel())


@pytest.mark.parametrize("name", NAMES)
def test_progress_false_prints_nothing(name, capfd):
    e = ENTRIES[name]
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e.run(e.models(), e.data(), progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_value_names_the_allowed_values(name):
    e = ENTRIES[name]
    (key, value), = e.bad.items()
    models = e.models()
    with _all_untouched(models), pytest.raises(OptionError) as info:
        e.run(models, e.data(), **e.bad)
    msg = str(info.value)
    assert key in msg and repr(value) in msg and "one of" in msg


@pytest.mark.parametrize("name", [n for n in NAMES if ENTRIES[n].float64])
def test_float64_on_a_model_with_batchnorm(name):
    e = ENTRIES[name]
    models = e.models() if name == "attention" else [_bn_mlp(0), _bn_mlp(1)]
    with _all_untouched(models):
        r64 = e.run(models, e.data(), dtype="float64")
        r32 = e.run(models, e.data())
    assert r64.provenance["view"]["dtype"] == "float64"
    assert r32.provenance["view"]["dtype"] == "float32"


@pytest.mark.parametrize("name", NAMES)
def test_cli_json_loads_back_and_replots(name, tmp_path):
    import matplotlib.pyplot as plt

    e = ENTRIES[name]
    ckpts = []
    models = e.models()
    if name in ("hessian", "landscape", "lmc"):  # a zoo model rebuilds itself from the file
        models = [zoo.build("mlp", sizes=(64, 16, 10), seed=s) for s in range(len(models))]
    for i, m in enumerate(models):
        p = tmp_path / f"m{i}.pt"
        save_checkpoint(m, p)
        ckpts.append(str(p))
    out = tmp_path / "r.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(e.cli(str(out), ckpts, "digits") + ["--no-progress"]) == 0
    res = Result.load(out)  # the stored type, found by name
    assert type(res) is not Result and res.provenance["analysis"] == name
    assert type(res).load(out).to_dict() == res.to_dict()
    plt.close(_plots()[name](res))


def _api(name: str) -> Callable[..., Any]:
    import importlib

    return importlib.import_module(f"analyses.{name}.api").__dict__[name]


@pytest.mark.parametrize("name", NAMES)
def test_cli_defaults_equal_api_defaults(name):
    sig = inspect.signature(_api(name))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cmd = sub.choices[name]
    compared = 0
    for action in cmd._actions:
        if action.help == argparse.SUPPRESS or action.dest not in sig.parameters:
            continue
        if action.dest in ("data", "model"):
            continue
        default = sig.parameters[action.dest].default
        flag = action.option_strings[0] if action.option_strings else action.dest
        assert action.default == default, f"{name} {flag}: CLI {action.default!r} vs API {default!r}"
        assert flag == "--" + action.dest.replace("_", "-"), f"{flag} is not named as {action.dest}"
        compared += 1
    assert compared >= 4


@pytest.mark.parametrize("kind", ["batchnorm", "kan"])
def test_interpolation_landscape_and_lmc_end_at_model_b(kind):
    """Under the follow policy both "the line from A to B" analyses reach B's own loss at t = 1
    (BatchNorm statistics and KAN grids are buffers), and both Results name the policy."""
    from analyses.landscape.api import landscape
    from analyses.lmc.api import lmc
    from inspect_kit.view import ModelView

    if kind == "batchnorm":
        a, b = _bn_mlp(0), _bn_mlp(1)
        data = _digits(200)
    else:
        x, y = _kan_data(300)
        a = zoo.build("kan", width=[2, 3, 1], seed=0)
        b = zoo.build("kan", width=[2, 3, 1], seed=1)
        with torch.no_grad():
            b.layers[0].update_grid(0.6 * x)  # B's grids differ from A's
        data = (x, y)
    loss_b = ModelView(b, data).loss()
    with _all_untouched([a, b]):
        land = landscape(a, data, directions="interpolation", target=b, dims=1, steps=7,
                         progress=False)
        path = lmc(a, b, data, steps=3, refine=False, progress=False)
    i1 = land.axes[0].index(1.0)
    assert land.loss[i1] == pytest.approx(loss_b, rel=1e-6, abs=1e-7)
    assert path.loss["data"][-1] == pytest.approx(loss_b, rel=1e-6, abs=1e-7)
    assert land.meta["buffers"] == "follow" and path.buffers == "follow"
    kept = lmc(a, b, data, steps=3, refine=False, buffers="keep", progress=False)
    assert abs(kept.loss["data"][-1] - loss_b) > 1e-4 and kept.buffers == "keep"
