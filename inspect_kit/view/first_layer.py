"""First-layer linearity: a model's first ``nn.Linear`` evaluated once per batch for a whole grid.

When the model's first operation on its input is one ``nn.Linear`` whose input ``u`` does not
depend on any parameter, its output at ``W0 + sum_k c_k D_k`` (bias ``b0 + sum_k c_k e_k``) is

    u W0^T + b0 + sum_k c_k (u D_k^T + e_k),

so the ``1 + K`` products are computed once per batch and every point of a line or plane pays
``K`` axpys instead of a matmul (exact, not an approximation). It is applied through a forward
pre-hook (input replaced by a zero-width view) and a forward hook (output replaced by the
precomputed sum), both removed on exit; the caller checks it once against the plain forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

#: memory cap for the precomputed first-layer products
TRICK_BYTES = 256 * 2**20


def linear_calls(view: Any, state: Mapping[str, torch.Tensor], b: Any) -> list[tuple[str, Any]]:
    """``(name, input)`` of every ``nn.Linear`` call of one functional forward, in call order."""
    calls: list[tuple[str, Any]] = []
    handles = []
    try:
        for name, m in view.model.named_modules():
            if type(m) is nn.Linear:
                handles.append(m.register_forward_pre_hook(
                    lambda mod, args, name=name: calls.append((name, args[0]))))
        view.call(state, b)
    finally:
        for h in handles:
            h.remove()
    return calls


class FirstLinear:
    """Precomputed first-layer products per batch (see the module docstring)."""

    def __init__(self, name: str, module: nn.Linear, prods: list[list[torch.Tensor]],
                 weight: torch.Tensor) -> None:
        self.name, self.module, self.prods = name, module, prods
        self.w_key = f"{name}.weight" if name else "weight"
        self.b_key = f"{name}.bias" if name else "bias"
        self.fixed = {self.w_key: weight.new_zeros(module.out_features, 0)}
        if module.bias is not None:
            self.fixed[self.b_key] = weight.new_zeros(module.out_features)
        self.h: Any = None
        self.bufs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def output(self, b: int, coef: Any) -> torch.Tensor:
        """``P0 + sum_k c_k P_k`` for batch ``b``; ``coef`` is a list ``(K,)`` or ``(B, K)``."""
        p = self.prods[b]
        if isinstance(coef, (list, tuple)):
            out = p[0]
            for k, c in enumerate(coef):
                out = torch.add(out, p[k + 1], alpha=c)
            return out
        stack = torch.stack(p[1:])  # (K, N, ...)
        return p[0] + torch.tensordot(coef.to(stack.dtype), stack, dims=1)

    def output_into(self, b: int, coef: torch.Tensor) -> torch.Tensor:
        """``P0 + [P1 .. PK] c`` in one ``addmv`` into a reused buffer (exactly P0 at c = 0)."""
        if b not in self.bufs:
            p = self.prods[b]
            # (M, K) as the transpose of a contiguous (K, M): column-major for gemv (a
            # row-major (M, K) with K >= 2 is 5-10x slower on one CPU thread)
            mat = torch.stack([q.reshape(-1) for q in p[1:]], dim=0).contiguous().T
            self.bufs[b] = (p[0].reshape(-1), mat, torch.empty_like(p[0]))
        p0, mat, buf = self.bufs[b]
        torch.addmv(p0, mat, coef.to(mat.dtype), out=buf.view(-1))
        return buf

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        def pre(mod: nn.Module, args: tuple) -> tuple:
            return (args[0][..., :0],) + tuple(args[1:])

        def post(mod: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return self.h

        h1 = self.module.register_forward_pre_hook(pre)
        h2 = self.module.register_forward_hook(post)
        try:
            yield
        finally:
            h1.remove()
            h2.remove()


@torch.no_grad()
def setup_first_linear(view: Any, origin: Mapping[str, torch.Tensor],
                       dirs: list[Mapping[str, torch.Tensor]],
                       moved: Mapping[str, torch.Tensor]) -> FirstLinear | None:
    """A :class:`FirstLinear` for ``view``'s model, or None when the rule does not apply.

    ``moved`` is a state at a moved point, used to check that the first Linear's input does not
    depend on the parameters.
    """
    if view.forward is not None:
        return None
    b0 = view.batches[0]
    calls = linear_calls(view, origin, b0)
    if not calls:
        return None
    name, u0 = calls[0]
    module = view.model.get_submodule(name)
    w_key = f"{name}.weight" if name else "weight"
    b_key = f"{name}.bias" if name else "bias"
    if sum(n == name for n, _ in calls) != 1 or w_key not in origin:
        return None
    u1 = next(u for n, u in linear_calls(view, moved, b0) if n == name)
    if not torch.equal(u0, u1):
        return None
    W, bias = origin[w_key], origin.get(b_key)
    per_point = sum(b.x.numel() // max(1, b.x.shape[-1]) for b in view.batches)
    if (len(dirs) + 1) * per_point * W.shape[0] * W.element_size() > TRICK_BYTES:
        return None
    prods = []
    for b in view.batches:
        u = next(u for n, u in linear_calls(view, origin, b) if n == name)
        ps = [torch.nn.functional.linear(u, W, bias)]
        for d in dirs:
            dw = d.get(w_key)
            dw = torch.zeros_like(W) if dw is None else dw
            db = d.get(b_key) if bias is not None else None
            ps.append(torch.nn.functional.linear(u, dw, db))
        prods.append(ps)
    return FirstLinear(name, module, prods, W)
