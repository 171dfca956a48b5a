"""Which analyses a report runs on a model, with which options, and why the others do not run.

Rules (:func:`plan`): ESD always (it needs no data); with data, the Hessian, the loss landscape,
the NTK (models up to ``max_params`` parameters) and attention (when the model has attention:
the capture decides); GGN outliers for classifiers of at most :data:`MAX_OUTLIER_CLASSES`
classes; symbolic formulas for KANs; the Fourier audit for modular addition; LMC when a second
model is given. The intrinsic dimension trains the model in many subspaces (minutes), so it runs
only when asked (``include``). ``include`` also lifts the parameter budget for what it names;
``exclude`` leaves analyses out.

Budgets come in two presets: :data:`STANDARD` (the default: the zoo MLP on digits within a
minute on two cores) and :data:`QUICK` (tiny: smoke tests); ``options`` overrides any of them
per analysis, and the shared options (``seed``, ``samples``, ``split``, ``model_mode``,
``dtype``, ``device``, ``loss``, ``batch_size``, ``memory``) go to every analysis that takes them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from inspect_kit.errors import OptionError

#: every analysis a report knows, in page order: key -> (title, "module:function")
ANALYSES: dict[str, tuple[str, str]] = {
    "esd": ("Weight spectra (ESD)", "analyses.esd:esd"),
    "hessian": ("Hessian spectrum", "analyses.hessian.api:hessian"),
    "outliers": ("GGN outliers (class structure)", "analyses.hessian.outliers:outliers"),
    "landscape": ("Loss landscape", "analyses.landscape:landscape"),
    "lmc": ("Linear mode connectivity", "analyses.lmc:lmc"),
    "attention": ("Attention", "analyses.attention.api:attention"),
    "symbolic": ("Symbolic formula", "analyses.symbolic.api:symbolic"),
    "fourier": ("Fourier audit (modular addition)", "analyses.fourier.api:fourier"),
    "ntk": ("Neural tangent kernel", "analyses.ntk.api:ntk"),
    "intrinsic_dimension": ("Intrinsic dimension", "analyses.intrinsic_dimension.api:"
                                                   "intrinsic_dimension"),
}

#: run only when named in ``include``
OPT_IN = ("intrinsic_dimension",)
#: analyses over the parameter budget are skipped (unless named in ``include``)
BUDGETED = ("hessian", "outliers", "landscape", "ntk", "intrinsic_dimension")
#: outliers compute C^2 + extra eigenpairs: more classes than this are not attempted
MAX_OUTLIER_CLASSES = 20
#: default parameter budget of the curvature analyses
MAX_PARAMS = 2_000_000

STANDARD: dict[str, dict[str, Any]] = {
    "esd": {},
    "hessian": dict(top_k=5, which="both", trace_budget=40, density=True, density_probes=3,
                    density_steps=40),
    "outliers": dict(extra=5, residual=False, samples=256),
    "landscape": dict(dims=2, steps=21),
    "lmc": dict(steps=11),
    "attention": dict(samples=64),
    "symbolic": {},
    "fourier": {},
    "ntk": dict(samples=128, top_k=10),
    "intrinsic_dimension": dict(epochs=3),
}

QUICK: dict[str, dict[str, Any]] = {
    "esd": dict(n_boot=20),
    "hessian": dict(top_k=2, which="largest", trace_budget=6, density=False, tol=1e-3,
                    max_steps=20, samples=64),
    "outliers": dict(extra=2, residual=False, samples=64, tol=1e-3),
    "landscape": dict(dims=2, steps=5, samples=64),
    "lmc": dict(steps=5, samples=64),
    "attention": dict(samples=8),
    "symbolic": dict(samples=200, n_points=51, refit_steps=10, simplify_seconds=1.0,
                     structure=False),
    "fourier": {},
    "ntk": dict(samples=16, top_k=3),
    "intrinsic_dimension": dict(dims=[4, 16], epochs=1, refine=0, samples=64),
}


@dataclasses.dataclass
class Step:
    """One analysis to run: ``run()`` returns its Result. ``optional``: an
    :class:`~inspect_kit.errors.UnsupportedModelError` means "does not apply", not a failure."""

    key: str
    title: str
    run: Callable[[], Any]
    options: dict[str, Any]
    optional: bool = False


@dataclasses.dataclass
class Plan:
    """The steps to run, in page order, and (title, reason) of every analysis left out."""

    steps: list[Step]
    skipped: list[tuple[str, str]]


def check_names(names: Iterable[str], flag: str) -> list[str]:
    """``names`` as a list, each one a known analysis (else an OptionError listing them)."""
    names = [n.replace("-", "_") for n in names]
    bad = [n for n in names if n not in ANALYSES]
    if bad:
        raise OptionError(f"{flag}: unknown analysis {', '.join(bad)}; choose from "
                          f"{', '.join(ANALYSES)}")
    return names


def function(key: str) -> Callable[..., Any]:
    """The entry point of analysis ``key`` (imported now)."""
    module, _, name = ANALYSES[key][1].partition(":")
    return getattr(importlib.import_module(module), name)


def accepted(fn: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``options`` that ``fn`` takes as keywords."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in params}


def n_classes(data: Any) -> int | None:
    """The number of classes of integer-labelled data (a bundle, a spec or ``(x, y)``)."""
    import torch

    from inspect_kit.data import DataBundle, load_data

    if isinstance(data, str):
        data = load_data(data)
    if isinstance(data, DataBundle):
        return data.n_outputs if data.task == "classification" else None
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], torch.Tensor):
        y = data[1]
        return int(y.max()) + 1 if not y.is_floating_point() and y.numel() else None
    return None


def _is_kan(model: Any) -> bool:
    from inspect_kit.errors import UnsupportedModelError
    from inspect_kit.kan import adapter_for

    try:
        adapter_for(model)
    except UnsupportedModelError:
        return False
    return True


def _is_modadd(model: Any, data: Any) -> bool:
    """The zoo modadd model, or data named ``modadd:...`` (a spec, or a bundle made from one)."""
    from inspect_kit.zoo.modadd import ModAddNet

    name = data if isinstance(data, str) else getattr(data, "name", "")
    return isinstance(model, ModAddNet) or (isinstance(name, str) and name.startswith("modadd"))


def _why_not(key: str, model: Any, data: Any, second: Any, n_params: int, max_params: int,
             forced: bool) -> str | None:
    """Why analysis ``key`` does not apply (None: it does)."""
    if key in OPT_IN and not forced:
        return "trains the model in many random subspaces (minutes); ask for it with --with " \
               + key.replace("_", "-")
    if key != "esd" and data is None:
        return "needs data (--data)"
    if key in BUDGETED and n_params > max_params and not forced:
        return (f"{n_params:,} parameters is over the budget of {max_params:,} (--max-params); "
                f"--with {key} runs it anyway")
    if key == "lmc" and second is None:
        return "needs a second checkpoint (--second)"
    if key == "symbolic" and not _is_kan(model):
        return "the model is not a KAN"
    if key == "fourier" and not _is_modadd(model, data):
        return "the model is not a modular-addition model (data modadd:P or the zoo modadd)"
    if key == "outliers":
        c = n_classes(data)
        if c is None:
            return "needs a classifier with integer labels"
        if c > MAX_OUTLIER_CLASSES and not forced:
            return (f"{c} classes: C^2 = {c * c:,} outlier eigenpairs is more than the report "
                    f"computes (up to {MAX_OUTLIER_CLASSES} classes); --with outliers runs it")
    return None


def plan(model: Any, data: Any = None, *, second: Any = None, include: Iterable[str] = (),
         exclude: Iterable[str] = (), quick: bool = False, max_params: int = MAX_PARAMS,
         options: Mapping[str, Mapping[str, Any]] | None = None,
         shared: Mapping[str, Any] | None = None) -> Plan:
    """The analyses to run on ``model`` (see the module docstring)."""
    include = check_names(include, "--with")
    exclude = check_names(exclude, "--without")
    options = {k: dict(v) for k, v in (options or {}).items()}
    check_names(options, "options")
    shared = {k: v for k, v in (shared or {}).items() if v is not None}
    preset = QUICK if quick else STANDARD
    n_params = sum(p.numel() for p in model.parameters())
    steps, skipped = [], []
    for key, (title, _) in ANALYSES.items():
        if key in exclude:
            skipped.append((title, "left out (--without)"))
            continue
        why = _why_not(key, model, data, second, n_params, max_params, key in include)
        if why is not None:
            skipped.append((title, why))
            continue
        fn = function(key)
        opts = accepted(fn, {**preset[key], **shared, **options.get(key, {})})
        opts.setdefault("progress", False)
        if key == "lmc":
            run = _bind(fn, (model, second, data), opts)
        elif key == "esd":
            run = _bind(fn, (model,), opts)
        else:
            run = _bind(fn, (model, data), opts)
        steps.append(Step(key, title, run, opts, optional=key == "attention"))
    return Plan(steps, skipped)


def _bind(fn: Callable[..., Any], args: tuple[Any, ...], opts: dict[str, Any]
          ) -> Callable[[], Any]:
    return lambda: fn(*args, **opts)
