"""HuggingFace transformers models (duck-typed: ``model.config._attn_implementation``).

Current transformers (>= 4.5x) declare, per model class, which modules return the attention
weights: ``_can_record_outputs["attentions"]`` (a class, a class-name suffix or an
``OutputRecorder(target_class, index, layer_name)``). Its own ``output_attentions=True`` installs
*permanent* forward hooks on those modules the first time it is used, so the kit never asks for
it. Instead a forward hook (removed on exit) on every matching module reads ``output[index]``:

* ``eager``: the module returns the weights (softmax in float32, after dropout in train mode,
  exactly what ``output_attentions=True`` reports): recorded as family ``hf``;
* ``sdpa``: the module returns ``None`` for the weights and calls
  ``F.scaled_dot_product_attention`` with the mask it built (bool, True = keep) or
  ``is_causal=True``; the SDPA recorder (:mod:`.sdpa`) records the call, attributed to the same
  module. The model keeps running its own kernel;
* anything else (flex, flash kernels), or ``sdpa`` when the ``sdpa`` family is not requested: the
  implementation is switched to ``eager`` for the context (``set_attn_implementation`` when the
  model has it, else the config attribute) and switched back on exit.

Models without ``_can_record_outputs`` (older releases, look-alikes) get the older route: eager
for the context and ``output_attentions=True`` passed to the top-level forward, whose
``outputs.attentions`` are recorded (and hidden again when the caller did not ask for them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from torch import nn

from . import windows
from .record import AttentionMap, AttentionRecording, CallCounter, store

KEY = "attentions"


def hf_config(model: nn.Module) -> Any:
    """The model's config when it looks like a HuggingFace one, else None."""
    cfg = getattr(model, "config", None)
    return cfg if cfg is not None and hasattr(cfg, "_attn_implementation") else None


def _specs(model: nn.Module) -> list[tuple[Any, str | None, int, str | None]]:
    """(target class, class-name suffix, output index, layer name) of every ``attentions``
    recorder declared by the model or a submodel."""
    out = []
    for m in model.modules():
        can = getattr(type(m), "_can_record_outputs", None)
        if not isinstance(can, dict) or KEY not in can:
            continue
        specs = can[KEY] if isinstance(can[KEY], (list, tuple)) else [can[KEY]]
        for s in specs:
            if isinstance(s, type):
                out.append((s, None, 1, None))
            elif isinstance(s, str):
                out.append((None, s, 1, None))
            else:
                out.append((getattr(s, "target_class", None), getattr(s, "class_name", None),
                            int(getattr(s, "index", 1)), getattr(s, "layer_name", None)))
    return out


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, module, output index) of the modules that return attention weights, matched as
    transformers matches ``_can_record_outputs`` (class or name suffix, then layer name)."""
    specs = _specs(model)
    found = []
    for name, m in model.named_modules():
        for cls, suffix, index, layer in specs:
            hit = (cls is not None and isinstance(m, cls)) or (
                suffix is not None and ("." + name).endswith(suffix))
            if hit and layer is not None:
                hit = "." + layer.strip(".") + "." in "." + name + "."
            if hit:
                found.append((name, m, index))
                break
    return found


def _switch_to_eager(model: nn.Module, cfg: Any, undo: list[Callable[[], None]]) -> None:
    impl = cfg._attn_implementation
    if impl == "eager":
        return
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        setter("eager")
        undo.append(lambda: setter(impl))
    else:
        cfg._attn_implementation = "eager"
        undo.append(lambda: setattr(cfg, "_attn_implementation", impl))


def hook_hf(model: nn.Module, rec: AttentionRecording, with_sdpa: bool, detach: bool,
            device: str | None, next_call: CallCounter, handles: list[Any],
            undo: list[Callable[[], None]]) -> set[int]:
    """Install the HF capture (module docstring); returns the ids of the hooked modules."""
    cfg = hf_config(model)
    if cfg is None:
        from ..errors import UnsupportedModelError

        raise UnsupportedModelError(
            "families includes 'hf' but the model has no config._attn_implementation; "
            "drop 'hf' or pass a HuggingFace model")
    mods = attention_modules(model)
    if not mods:
        _output_attentions(model, cfg, rec, detach, device, next_call, handles, undo)
        return set()
    if not (cfg._attn_implementation in ("eager", None)
            or (cfg._attn_implementation == "sdpa" and with_sdpa)):
        _switch_to_eager(model, cfg, undo)
    named = dict(model.named_modules())
    for name, m, index in mods:
        label = name or type(m).__name__

        def post(mod: nn.Module, args: tuple, output: Any, name: str = name, label: str = label,
                 index: int = index) -> None:
            w = output[index] if isinstance(output, (tuple, list)) and len(output) > index \
                else None
            if w is None or not hasattr(w, "dim") or w.dim() < 3:
                return  # sdpa (recorded by the SDPA wrapper) or no weights
            rec.add(AttentionMap(label, "hf", type(mod).__name__, store(w, detach, device), None,
                                 True, *next_call(label),
                                 windows=windows.of_module(named, name, w.shape[-1])))

        handles.append(m.register_forward_hook(post))
    return {id(m) for _, m, _ in mods}


def _output_attentions(model: nn.Module, cfg: Any, rec: AttentionRecording, detach: bool,
                       device: str | None, next_call: CallCounter, handles: list[Any],
                       undo: list[Callable[[], None]]) -> None:
    """The older route: eager + ``output_attentions=True`` on the top-level forward."""
    _switch_to_eager(model, cfg, undo)
    asked: list[bool] = []

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        asked.append(bool(kwargs.get("output_attentions")))
        return args, {**kwargs, "output_attentions": True}

    def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        user_asked = asked.pop() if asked else True
        if output is None:
            return output
        atts = getattr(output, KEY, None)
        if atts is None and isinstance(output, dict):
            atts = output.get(KEY)
        if atts is None:
            rec.problems.append("the HuggingFace-style model returned no attentions with "
                                "eager attention and output_attentions=True")
            return output
        for i, a in enumerate(atts):
            if a is not None:
                rec.add(AttentionMap(f"{KEY}.{i}", "hf", type(module).__name__,
                                     store(a, detach, device), None, True,
                                     *next_call(f"{KEY}.{i}")))
        if not user_asked and hasattr(output, KEY):
            with contextlib.suppress(Exception):
                output.attentions = None
        return output

    handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
    handles.append(model.register_forward_hook(post, with_kwargs=True, always_call=True))
