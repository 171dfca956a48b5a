"""Safe export of a formula: LaTeX, a Python callable and a torch module that never return
inf/NaN silently.

:func:`singularities` lists the conditions under which the formula is finite and real (division
by zero, even roots and logs of non-positives, asin/acos/atanh outside their domain, tan poles);
:func:`to_callable` and :func:`to_torch` evaluate those guards first and raise
:class:`~inspect_kit.errors.NonFiniteError` naming the violated condition and the first offending
input. Functions the torch printer lacks (cot, sec, ...) are rewritten first
(:func:`analyses.symbolic.formula.torch_printable`), so their poles are guarded too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inspect_kit.errors import NonFiniteError

from .formula import lambdify_torch, torch_printable


def singularities(expr: Any) -> list[tuple[str, Any]]:
    """Conditions for ``expr`` to be finite and real: ``[(description, guard_expr)]`` where the
    formula is undefined wherever ``guard_expr <= 0`` (the guards are evaluated by the exports)."""
    import sympy

    out: list[tuple[str, Any]] = []
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            base, ex = node.args
            if ex.is_number and ex.is_negative:
                out.append((f"division by zero where {base} = 0", sympy.Abs(base)))
            if ex.is_number and not ex.is_integer:
                guard = base if ex.is_negative else base + sympy.Float(1e-300)
                out.append((f"even root of a negative where {base} < 0", guard))
        elif isinstance(node, sympy.log):
            out.append((f"log of a non-positive where {node.args[0]} <= 0", node.args[0]))
        elif isinstance(node, (sympy.asin, sympy.acos)):
            out.append((f"{type(node).__name__} argument outside [-1, 1]: {node.args[0]}",
                        1 - node.args[0] ** 2 + sympy.Float(1e-300)))
        elif isinstance(node, sympy.atanh):
            out.append((f"atanh argument outside (-1, 1): {node.args[0]}", 1 - node.args[0] ** 2))
        elif isinstance(node, sympy.tan):
            out.append((f"tan pole where cos({node.args[0]}) = 0", sympy.Abs(sympy.cos(node.args[0]))))
    seen, uniq = set(), []
    for d, g in out:
        if d not in seen and g.free_symbols:
            seen.add(d)
            uniq.append((d, g))
    return uniq


class _Guarded:
    def __init__(self, expr: Any, syms: Sequence[Any]):
        expr = torch_printable(expr)
        self.expr, self.syms = expr, list(syms)
        self.fn = lambdify_torch(expr, self.syms)
        self.guards = [(d, lambdify_torch(g, self.syms)) for d, g in singularities(expr)]

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() != 2 or X.shape[1] != len(self.syms):
            raise NonFiniteError(f"the formula takes inputs of shape (N, {len(self.syms)}), "
                                 f"got {tuple(X.shape)}")
        cols = [X[:, i] for i in range(X.shape[1])]
        with torch.no_grad():
            for desc, g in self.guards:
                gv = g(*cols)
                bad = ~(gv > 0)
                if bool(bad.any()):
                    r = int(bad.nonzero()[0, 0])
                    raise NonFiniteError(
                        f"the formula is undefined at {int(bad.sum())} of {len(X)} inputs "
                        f"({desc}); first at x={X[r].tolist()}. Restrict inputs to the data range")
        out = self.fn(*cols)
        if not bool(torch.isfinite(out).all()):
            r = int((~torch.isfinite(out)).nonzero()[0, 0])
            raise NonFiniteError(f"the formula is not finite at x={X[r].tolist()}")
        return out


def to_callable(expr: Any, syms: Sequence[Any]) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy function ``X (N, n) -> (N,)`` that raises NonFiniteError at singular inputs."""
    g = _Guarded(expr, syms)

    def f(X: Any) -> np.ndarray:
        Xt = torch.as_tensor(np.asarray(X, dtype=float), dtype=torch.float64)
        Xt = Xt[None] if Xt.dim() == 1 else Xt
        return g(Xt).numpy()

    f.__doc__ = f"{expr}  (raises NonFiniteError where undefined)"
    return f


class FormulaModule(nn.Module):
    """A torch module ``x (B, n) -> (B, 1)`` computing the formula, guarded like :func:`to_callable`."""

    def __init__(self, expr: Any, syms: Sequence[Any]):
        super().__init__()
        self._g = _Guarded(expr, syms)
        self.formula = str(expr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._g(x.to(torch.float64)).unsqueeze(1).to(x.dtype)


def to_torch(expr: Any, syms: Sequence[Any]) -> FormulaModule:
    """The formula as a guarded torch module (see :class:`FormulaModule`)."""
    return FormulaModule(expr, syms)


def to_latex(expr: Any) -> str:
    """LaTeX source of the formula (sympy's printer)."""
    import sympy

    return sympy.latex(expr)


__all__ = ["FormulaModule", "singularities", "to_callable", "to_latex", "to_torch"]
