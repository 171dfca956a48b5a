"""Test helpers shared by the whole suite (and by users who test their own analyses).

:func:`assert_untouched` enforces the kit's contract "analyses never mutate the model":
parameters, buffers, ``training`` flags, ``requires_grad``, ``.grad`` and every hook dict are the
same after the body as before it, bit for bit, also when the body raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)

_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything :func:`assert_untouched` compares, copied."""
    from torch.nn.modules import module as module_mod

    return {
        "params": {n: (p.detach().clone(), p.requires_grad, p.dtype, p.device)
                   for n, p in model.named_parameters()},
        "grads": {n: (None if p.grad is None else p.grad.detach().clone())
                  for n, p in model.named_parameters()},
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: tuple(len(getattr(m, h, {}) or {}) for h in _HOOK_DICTS)
                  for n, m in model.named_modules()},
        "global_hooks": tuple(len(getattr(module_mod, h, {})) for h in _GLOBAL_HOOKS),
        "sdpa": F.scaled_dot_product_attention,
        "modules": [n for n, _ in model.named_modules()],
        "attributes": {n: {k: id(v) for k, v in m.__dict__.items() if k not in _HOOK_DICTS}
                       for n, m in model.named_modules()},
    }


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical, with NaN equal to NaN (a NaN weight is not a modification)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(torch.isnan(a), torch.isnan(b))
                    and torch.equal(torch.nan_to_num(a, 0.0), torch.nan_to_num(b, 0.0)))
    return False


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty when untouched)."""
    problems: list[str] = []
    if before["modules"] != after["modules"]:
        problems.append("the module tree changed")
    for n, (p, rg, dt, dev) in before["params"].items():
        if n not in after["params"]:
            problems.append(f"parameter {n} disappeared")
            continue
        p2, rg2, dt2, dev2 = after["params"][n]
        if (dt, dev) != (dt2, dev2) or not _same(p, p2):
            problems.append(f"parameter {n} changed")
        if rg != rg2:
            problems.append(f"requires_grad of {n} changed from {rg} to {rg2}")
    for n, g in before["grads"].items():
        g2 = after["grads"].get(n)
        if (g is None) != (g2 is None) or (g is not None and not _same(g, g2)):
            problems.append(f".grad of {n} changed")
    for n, b in before["buffers"].items():
        b2 = after["buffers"].get(n)
        if b2 is None or not _same(b, b2):
            problems.append(f"buffer {n} changed")
    for n, t in before["training"].items():
        if after["training"].get(n) != t:
            problems.append(f"training flag of {n or 'the model'} changed from {t}")
    for n, h in before["hooks"].items():
        if after["hooks"].get(n) != h:
            problems.append(f"hooks on {n or 'the model'} changed: {h} -> {after['hooks'].get(n)}")
    if before["global_hooks"] != after["global_hooks"]:
        problems.append("global module hooks changed")
    for n, attrs in before["attributes"].items():
        now = after["attributes"].get(n, {})
        changed = sorted(k for k in attrs.keys() | now.keys() if attrs.get(k) != now.get(k))
        if changed:
            problems.append(f"attributes of {n or 'the model'} rebound, added or removed: "
                            + ", ".join(changed[:5]))
    if before["sdpa"] is not after["sdpa"]:
        problems.append("F.scaled_dot_product_attention is still patched")
    return problems


@contextlib.contextmanager
def assert_untouched(model: nn.Module) -> Iterator[None]:
    """Fail if the body changes ``model`` in any way (checked also when the body raises).

    >>> m = nn.Linear(2, 2)
    >>> with assert_untouched(m):
    ...     _ = m(torch.ones(1, 2))
    """
    before = snapshot(model)
    try:
        yield
    finally:
        problems = compare(before, snapshot(model))
        if problems:
            raise AssertionError("the model was modified: " + "; ".join(problems))
