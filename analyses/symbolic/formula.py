"""Composing, refitting, snapping, simplifying and safely exporting a KAN's formula.

* :func:`compose`: layer by layer, node expressions -> ``adapter.input_map_sympy`` -> the chosen
  edge fits ``c f(a e_i + b) + d`` -> sub-node sums -> ``adapter.node_map_sympy`` (biases, node and
  sub-node affines, mult nodes of any arity, all defined by the adapter).
* :func:`refit`: every float constant of the composed expression becomes a parameter, fitted
  jointly by L-BFGS (torch, float64) to the network's outputs on the training inputs.
* :func:`snap` (constant snapping) lives in :mod:`.snap`.
* :func:`simplify_with_timeout`: ``sympy.simplify`` with a time limit (:mod:`.deadline`).
* safe exports (LaTeX, a guarded Python callable, a torch module) live in :mod:`.export`.
* :func:`exact_match`: the criterion for exact recovery, stated here once: the formula and the
  truth agree to ``1e-8 * max(1, max|truth|)`` on 256 seeded uniform points of the data box;
  ``sympy.simplify(formula - truth) == 0`` is reported separately (it may time out).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import deadline
from .library import Primitive, _sym


def parse_truth(text: str, syms: Sequence[Any]) -> Any:
    """A ground-truth formula in ``x1..xn`` (the restricted parser, never ``eval``)."""
    from inspect_kit.formula_parser import parse_formula

    return parse_formula(text, {s.name: s for s in syms}, what="truth")


def input_symbols(n: int) -> list[Any]:
    import sympy

    return [sympy.Symbol(f"x{i + 1}", real=True) for i in range(n)]


def edge_expr(prim: Primitive | None, params: dict[str, float], var: Any,
              poly: Sequence[float] | None = None) -> Any:
    """One edge ``c f(a var + b) + d`` (``prim=None``: the constant ``d`` of a zeroed edge)."""
    import sympy

    if prim is None:
        return sympy.Float(params["d"]) if params["d"] else sympy.Integer(0)
    if prim.symmetry == "poly":
        return sum(sympy.Float(c) * var**k for k, c in enumerate(poly))
    x = _sym()
    a, b, c, d = (float(params[k]) for k in "abcd")
    inner = sympy.Float(a) * var + sympy.Float(b) if (a, b) != (1.0, 0.0) else var
    body = inner if prim.symmetry == "linear" else prim.sympy().subs(x, inner)
    out = body if c == 1.0 else sympy.Float(c) * body
    return out + sympy.Float(d) if d else out


def compose(adapter: Any, edges: dict[tuple[int, int, int], Any]) -> list[Any]:
    """Output expressions of the network with edge ``(l, j, i)`` replaced by ``edges[(l, j, i)]``,
    a callable ``var -> sympy expr`` (missing edges count as 0)."""
    import sympy

    h = input_symbols(adapter.widths[0])
    for l in range(adapter.n_layers):
        e = adapter.input_map_sympy(l, h)
        n_out, n_in = adapter.edge_shape(l)
        subs = [sympy.Add(*[edges[(l, j, i)](e[i]) for i in range(n_in) if (l, j, i) in edges])
                for j in range(n_out)]
        h = adapter.node_map_sympy(l, subs)
    return [fold_pow(fold_exp(v)) for v in h]


def scale_terms(total: Any, k: Any) -> Any:
    """``k * total`` for a sum, distributed over its top-level terms only (``sympy.expand`` would
    also multiply out every nested power and product: on a composed FastKAN formula that ran for
    more than 12 minutes)."""
    import sympy

    return sympy.Add(*[t * k for t in total.args])


def fold_pow(expr: Any) -> Any:
    """``(k u + ...)^p -> k^p (u + ...)^p`` for a positive float ``k`` leading a sum under a power:
    removes the scale redundancy between inner and outer constants before refits and snapping."""
    import sympy

    def rule(e: Any) -> Any:
        base, p = e.args
        if not isinstance(base, sympy.Add) or not p.is_number:
            return e
        terms = [t for t in base.as_ordered_terms() if not t.is_Number]
        if not terms:
            return e
        k = terms[0].as_coeff_Mul()[0]
        if not (k.is_Float and k > 0) or float(k) == 1.0:
            return e
        return sympy.Float(float(k) ** float(p)) * sympy.Pow(scale_terms(base, 1 / k), p)

    return expr.replace(lambda e: isinstance(e, sympy.Pow), rule)


def fold_scale(expr: Any) -> Any:
    """``K (k u + r) -> (K k) (u + r / k)`` for every sum that is a factor of a product, ``k``
    the float coefficient of its first non-constant term: a product of fitted factors then has one
    overall scale instead of one per factor (the others are not identifiable), so refits and
    snapping see a single constant."""
    import sympy

    def rule(e: Any) -> Any:
        coeff, rest = sympy.Integer(1), []
        for f in e.args:
            if isinstance(f, sympy.Add):
                terms = [t for t in f.as_ordered_terms() if not t.is_Number]
                k = terms[0].as_coeff_Mul()[0] if terms else None
                if k is not None and k.is_Float and float(k) != 0.0:
                    coeff *= k
                    f = scale_terms(f, 1 / k)
            rest.append(f)
        return sympy.Mul(coeff, *rest) if coeff != 1 else e

    out = expr.replace(lambda e: isinstance(e, sympy.Mul), rule)
    return out.xreplace({f: sympy.Integer(1) for f in out.atoms(sympy.Float)
                        if float(f) == 1.0})


def fold_exp(expr: Any) -> Any:
    """``exp(u + k) -> e^k exp(u)`` for float ``k`` (removes a redundant constant before refits)."""
    import sympy

    def rule(e: Any) -> Any:
        arg = e.args[0]
        if isinstance(arg, sympy.Add):
            k = [t for t in arg.args if t.is_Number]
            if k:
                return sympy.exp(sympy.Add(*k)) * sympy.exp(sympy.Add(*[t for t in arg.args
                                                                         if not t.is_Number]))
        return e

    return expr.replace(lambda e: isinstance(e, sympy.exp), rule)


def floats(expr: Any) -> list[Any]:
    """The float constants of ``expr`` in a deterministic order."""
    import sympy

    return sorted(expr.atoms(sympy.Float), key=lambda f: (float(f), str(f)))


def numeric(expr: Any) -> Any:
    """``expr`` with every exact constant subtree (sqrt(2), pi/3, ...) turned into a Float."""
    import sympy

    if expr.is_number:
        return sympy.Float(expr.evalf())
    return expr.replace(lambda e: e.is_number and not (e.is_Integer or e.is_Float),
                        lambda e: sympy.Float(e.evalf()))


def torch_printable(expr: Any) -> Any:
    """``expr`` with the functions sympy's torch printer lacks (``cot``, ``sec``, ``csc``,
    ``coth``, ``sech``, ``csch``, ``acot``, ``asec``, ``acsc``; ``simplify`` likes them) rewritten
    through ones it has."""
    import sympy

    rules = {sympy.cot: lambda u: 1 / sympy.tan(u), sympy.sec: lambda u: 1 / sympy.cos(u),
             sympy.csc: lambda u: 1 / sympy.sin(u), sympy.coth: lambda u: 1 / sympy.tanh(u),
             sympy.sech: lambda u: 1 / sympy.cosh(u), sympy.csch: lambda u: 1 / sympy.sinh(u),
             sympy.acot: lambda u: sympy.atan(1 / u), sympy.asec: lambda u: sympy.acos(1 / u),
             sympy.acsc: lambda u: sympy.asin(1 / u)}
    for f, g in rules.items():
        if expr.has(f):
            expr = expr.replace(f, g)
    return expr


def lambdify_torch(expr: Any, args: Sequence[Any]) -> Callable:
    """``expr`` as a torch function of ``args`` (cached: a formula is evaluated many times)."""
    return _lambdify_cached(expr, tuple(args))


@functools.lru_cache(maxsize=64)
def _lambdify_cached(expr: Any, args: tuple[Any, ...]) -> Callable:
    import sympy

    big = sympy.count_ops(expr, visual=False) > 2000  # shared subtrees (LayerNorm): print once
    fn = sympy.lambdify(list(args), torch_printable(numeric(expr)), "torch", cse=big)

    def g(*a: torch.Tensor) -> torch.Tensor:
        out = fn(*a)
        return torch.as_tensor(out, dtype=a[0].dtype) + torch.zeros_like(a[0])

    return g


def evaluate(expr: Any, syms: Sequence[Any], X: torch.Tensor) -> torch.Tensor:
    """``expr`` on the rows of ``X (N, n)`` in float64 (no guards; see :func:`to_callable`)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    with torch.no_grad():
        return lambdify_torch(expr, syms)(*[X[:, i] for i in range(X.shape[1])])


def refit(expr: Any, syms: Sequence[Any], X: torch.Tensor, target: torch.Tensor, *,
          steps: int = 100, frozen: Sequence[Any] = (), trust_region: bool = True,
          method: str = "lbfgs") -> Any:
    """Joint refit of every float constant of ``expr`` (except ``frozen``) to ``target``: least
    squares ``min_theta mean_i (expr(x_i; theta) - y_i)^2``.

    ``method="lbfgs"`` (default): L-BFGS with at most ``steps`` iterations; when it stalls
    (``trust_region``, default) a Jacobian-scaled trust region is tried too.
    ``method="lsq"``: the trust region (Gauss-Newton steps, ``steps`` residual evaluations)
    alone, L-BFGS only if it fails; on formulas nearly linear in their constants (products
    with redundant scales) it converges in a few steps where L-BFGS needs hundreds.

    Returns the refitted expression, or ``expr`` unchanged when the refit does not lower the MSE.
    """
    import sympy

    consts = [f for f in floats(expr) if f not in set(frozen)]
    if not consts:
        return expr
    ps = [sympy.Symbol(f"_p{k}") for k in range(len(consts))]
    templ = expr.xreplace(dict(zip(consts, ps)))
    fn = lambdify_torch(templ, list(syms) + ps)
    X = torch.as_tensor(X, dtype=torch.float64)
    cols = [X[:, i] for i in range(X.shape[1])]
    y = torch.as_tensor(target, dtype=torch.float64).reshape(-1)
    from scipy.optimize import minimize  # torch.optim would import torch._dynamo (slow)

    def loss_grad(th: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(th, dtype=torch.float64, requires_grad=True)
        with np.errstate(all="ignore"):
            loss = ((fn(*cols, *t.unbind()) - y) ** 2).mean()
        if not torch.isfinite(loss):
            return 1e300, np.zeros_like(th)
        (g,) = torch.autograd.grad(loss, t)
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        return float(loss.detach()), g.numpy()

    th0 = np.array([float(c) for c in consts])
    before = loss_grad(th0)[0]
    if method == "lsq":
        alt = _trust_region(fn, cols, y, th0, steps)
        if alt is not None and math.isfinite(a := loss_grad(alt)[0]) and a < before:
            return templ.xreplace({p: sympy.Float(float(v)) for p, v in zip(ps, alt)})
    elif method != "lbfgs":
        raise ValueError(f"method must be 'lbfgs' or 'lsq', got {method!r}")
    try:
        opt = minimize(loss_grad, th0, jac=True, method="L-BFGS-B",
                       options={"maxiter": steps, "ftol": 1e-16, "gtol": 1e-14})
    except (RuntimeError, ValueError, FloatingPointError):
        return expr
    theta = opt.x
    after = loss_grad(theta)[0]
    if trust_region and (opt.nit <= 2 or not opt.success) and len(th0) <= 12:
        # stalled: a first step left the domain (log, sqrt); a trust region takes smaller
        # steps (few constants only: each step solves a dense least-squares problem in them)
        alt = _trust_region(fn, cols, y, th0, steps)
        if alt is not None and (a := loss_grad(alt)[0]) < after:
            theta, after = alt, a
    if not (math.isfinite(after) and after < before) or not np.isfinite(theta).all():
        return expr
    return templ.xreplace({p: sympy.Float(float(v)) for p, v in zip(ps, theta)})


def _trust_region(fn: Callable, cols: list[torch.Tensor], y: torch.Tensor, th0: np.ndarray,
                  steps: int) -> np.ndarray | None:
    """Least-squares refit by a trust region scaled by the Jacobian (scipy ``trf``): a trial
    step that leaves the formula's domain only shrinks the region, where L-BFGS's line search
    stops after one step when a constant inside ``log(x + c)`` has a gradient orders of
    magnitude above the others. None when it fails."""
    from scipy.optimize import least_squares

    def res(th: np.ndarray) -> np.ndarray:
        with torch.no_grad(), np.errstate(all="ignore"):
            r = (fn(*cols, *torch.as_tensor(th, dtype=torch.float64).unbind()) - y).numpy()
        return r if np.isfinite(r).all() else np.full_like(r, np.inf)

    def jac(th: np.ndarray) -> np.ndarray:
        return torch.nan_to_num(jacobian_in_constants(fn, cols, th), nan=0.0, posinf=0.0,
                                neginf=0.0).numpy()

    if not np.isfinite(res(th0)).all():
        return None
    try:  # a trial step out of the domain has an infinite cost by design: scipy's ratios of it
        with np.errstate(all="ignore"):  # are not the user's warnings
            out = least_squares(res, th0, jac=jac, method="trf", x_scale="jac",
                                max_nfev=steps, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    except (RuntimeError, ValueError, FloatingPointError):
        return None
    return out.x if np.isfinite(out.x).all() else None


def jacobian_in_constants(fn: Callable, cols: list[torch.Tensor], th: np.ndarray) -> torch.Tensor:
    """``J[i, k] = d fn(x_i; theta) / d theta_k`` (N, K) by forward mode: all K tangents in one
    vectorised pass (``torch.func.jacfwd``; reverse mode would cost one pass per data point),
    or one pass per constant when an operation of ``fn`` cannot be vectorised. A constant
    ``fn`` does not depend on gets a zero column."""
    import torch.autograd.forward_ad as fwad
    from torch.func import jacfwd

    t = torch.as_tensor(th, dtype=torch.float64)
    n = len(cols[0]) if cols else 1
    try:
        with np.errstate(all="ignore"):
            J = jacfwd(lambda u: fn(*cols, *u.unbind()))(t)
        if J.shape == (n, t.numel()):
            return J
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        pass
    J = torch.zeros(n, t.numel(), dtype=torch.float64)
    eye = torch.eye(t.numel(), dtype=torch.float64)
    for k in range(t.numel()):
        with fwad.dual_level(), np.errstate(all="ignore"):
            out = fn(*cols, *fwad.make_dual(t, eye[k]).unbind())
            tangent = fwad.unpack_dual(out).tangent if isinstance(out, torch.Tensor) else None
        if tangent is not None:
            J[:, k] = tangent
    return J


def simplify_with_timeout(expr: Any, seconds: float = 10.0) -> tuple[Any, bool]:
    """``(sympy.simplify(expr), True)``, or ``(expr, False)`` when it takes longer than
    ``seconds`` or fails (bounded by :func:`analyses.symbolic.deadline.call`)."""
    import sympy

    out = deadline.call(sympy.simplify, expr, seconds=seconds, fallback=None)
    return (expr, False) if out is None else (out, True)


def polish(expr: Any, syms: Sequence[Any], X: torch.Tensor, y_net: torch.Tensor,
           y_data: torch.Tensor | None = None, *, X_check: torch.Tensor | None = None,
           snap_constants: bool = True, snap_min_r2: float = 0.999, refit_steps: int = 60,
           simplify_seconds: float = 5.0) -> tuple[Any, bool]:
    """Snap (only when the formula already fits ``y_data`` to ``snap_min_r2``: snapping a formula
    that misses the data is pointless), refit to ``y_net``, simplify (kept only if it has no
    more operations and equals the formula to 1e-12 in R^2 on ``X_check``); a second round when
    simplification exposed new constants. Returns ``(expression, snapped)``."""
    from .snap import snap as _snap

    Xc = X if X_check is None else X_check
    do_snap = bool(snap_constants and y_data is not None
                   and r2_score(evaluate(expr, syms, X), y_data) >= snap_min_r2)
    e = expr
    for _round in range(2):
        if do_snap:
            e = _snap(e, syms, X, y_data, y_net)
        e = refit(e, syms, X, y_net, steps=refit_steps)
        s, ok = simplify_with_timeout(e, simplify_seconds)
        changed = False
        if ok and op_count(s) <= op_count(e) and s != e:
            with np.errstate(all="ignore"):
                same = r2_score(evaluate(s, syms, Xc), evaluate(e, syms, Xc))
            if same > 1 - 1e-12:
                e, changed = s, True
        if not (changed and do_snap and floats(e)):
            break
    return e, do_snap


def op_count(expr: Any) -> int:
    import sympy

    return int(sympy.count_ops(expr))


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - SSE/SST`` (``-inf`` when the prediction is not finite)."""
    p = torch.as_tensor(pred, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(target, dtype=torch.float64).reshape(-1)
    if not bool(torch.isfinite(p).all()):
        return -math.inf
    sst = float(((t - t.mean()) ** 2).sum())
    return 1.0 - float(((p - t) ** 2).sum()) / max(sst, 1e-300)


def exact_match(expr: Any, truth: Any, syms: Sequence[Any], box: np.ndarray, *, seed: int = 0,
                symbolic_seconds: float = 10.0) -> dict[str, Any]:
    """Exact-recovery check (criterion in the module docstring). ``box``: (n, 2) input ranges."""
    import sympy

    if isinstance(truth, str):
        truth = parse_truth(truth, syms)
    truth = truth.xreplace({sympy.Symbol(s.name): s for s in syms})
    g = torch.Generator().manual_seed(int(seed))
    lo = torch.as_tensor(box[:, 0], dtype=torch.float64)
    hi = torch.as_tensor(box[:, 1], dtype=torch.float64)
    X = lo + (hi - lo) * torch.rand(256, len(syms), generator=g, dtype=torch.float64)
    with np.errstate(all="ignore"):
        f, t = evaluate(expr, syms, X), evaluate(truth, syms, X)
    err = float((f - t).abs().max()) if bool(torch.isfinite(f).all()) else math.inf
    scale = max(1.0, float(t.abs().max()))
    diff = deadline.call(lambda: sympy.simplify(sympy.expand(expr - truth)),
                         seconds=symbolic_seconds, fallback=None)
    sym_ok = None if diff is None else bool(diff == 0)
    return {"exact": bool(err <= 1e-8 * scale), "max_abs_error": err, "symbolic_zero": sym_ok,
            "truth": str(truth)}
