"""The primitive library for symbolic edge fitting: ``y ~ c * f(a*x + b) + d``.

Every primitive is a sympy string in the variable ``x`` (so user primitives are plain strings and a
saved result reloads in a fresh process), with

* ``complexity`` (pykan's values where pykan has the primitive, Liu et al. 2024, arXiv 2404.19756),
* a torch callable and its derivative, both lambdified from the sympy expression,
* a ``domain``: the connected intervals where ``f`` is defined; a candidate ``(a, b)`` is valid
  only when every ``u = a*x + b`` lies in ONE interval and ``f(u)`` is finite (so a fitted
  ``sqrt`` never sees a negative argument and ``1/x`` never straddles its pole),
* a ``symmetry`` naming its canonicalisation rule (:meth:`Primitive.canonical`):

  ============  ==========================================================================
  ``odd``       f(-u) = -f(u): make a >= 0 (flip a, b, c)
  ``even``      f(-u) = f(u): make a >= 0 (flip a, b)
  ``power``     f = u^p: fold |a|^p into c (a = +-1, kept sign only when p is not an integer)
  ``log``       log(a x + b) = log|a| + log(x + b/a): a = 1, fold log|a| into d
  ``exp``       exp(a x + b) = e^b exp(a x): fold b into c (b = 0)
  ``sin``       one family for sin and cos: a >= 0, c >= 0, phase b in (-pi, pi]
  ``tan``       period pi: a >= 0 (odd), phase b in (-pi/2, pi/2]
  ``acos``      acos(-u) = pi - acos(u): a >= 0, fold c*pi into d
  ``sigmoid``   s(-u) = 1 - s(u): a >= 0, fold c into d
  ``linear``    f = x: a = 1, b = 0 (fitted in closed form)
  ``poly``      cubic polynomial fallback, fitted in closed form (coefficients in ``poly``)
  ``none``      no rule
  ============  ==========================================================================

Aliases (``cos`` -> ``sin``, ``x^0.5`` -> ``sqrt``, ``1/x^0.5`` -> ``1/sqrt``) keep pykan's names
usable without duplicate fits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from inspect_kit.errors import OptionError

INF = math.inf
REAL = ((-INF, INF),)
POS = ((0.0, INF),)
NONZERO = ((-INF, 0.0), (0.0, INF))
UNIT = ((-1.0, 1.0),)

SYMMETRIES = ("odd", "even", "power", "log", "exp", "sin", "tan", "acos", "sigmoid", "linear",
              "poly", "none")


def _sym():
    import sympy

    return sympy.Symbol("x", real=True)


@functools.lru_cache(maxsize=512)
def _parse(expr: str) -> Any:
    from inspect_kit.formula_parser import parse_formula

    x = _sym()
    return parse_formula(expr, {"x": x}, what="primitive")


@functools.lru_cache(maxsize=512)
def _torch_fns(expr: str) -> tuple[Callable, Callable]:
    import sympy

    x = _sym()
    e = _parse(expr)
    de = sympy.diff(e, x).replace(sympy.DiracDelta, lambda *a: sympy.Integer(0))
    f = sympy.lambdify(x, e.evalf(), "torch")  # evalf: sqrt(pi) etc. become plain floats
    fp = sympy.lambdify(x, de.evalf(), "torch")

    def wrap(fn: Callable) -> Callable:
        def g(u: Any) -> Any:
            out = fn(u)
            if not hasattr(out, "shape") or out.shape != u.shape:  # constants -> full tensors
                import torch

                out = torch.as_tensor(out, dtype=u.dtype) + torch.zeros_like(u)
            return out
        return g

    return wrap(f), wrap(fp)


@dataclasses.dataclass(frozen=True)
class Primitive:
    """One library entry: ``expr`` (sympy string in ``x``), complexity, domain and symmetry."""

    name: str
    expr: str
    complexity: float
    domain: tuple[tuple[float, float], ...] = REAL
    symmetry: str = "none"
    power: float | None = None

    def __post_init__(self) -> None:
        if self.symmetry not in SYMMETRIES:
            raise OptionError(f"symmetry must be one of {SYMMETRIES}, got {self.symmetry!r}")
        if self.symmetry != "poly":
            _parse(self.expr)

    @property
    def n_params(self) -> int:
        """Free parameters of ``c f(a x + b) + d`` after canonicalisation (a symmetry that
        folds one of them leaves three; ``x`` has two, the cubic four)."""
        if self.symmetry == "linear":
            return 2
        return 3 if self.symmetry in ("power", "log", "exp") else 4

    @property
    def closed_form(self) -> bool:
        """True for primitives fitted by linear least squares without an (a, b) search."""
        return self.symmetry in ("linear", "poly")

    def sympy(self) -> Any:
        """The sympy expression of ``f`` in the real symbol ``x``."""
        return _parse(self.expr)

    def torch_fn(self) -> Callable:
        return _torch_fns(self.expr)[0]

    def torch_deriv(self) -> Callable:
        return _torch_fns(self.expr)[1]

    def in_domain(self, u: Any) -> Any:
        """Boolean over the leading dims: every sample (last dim) of ``u`` in ONE interval."""
        return self.range_ok(u.amin(-1), u.amax(-1))

    def range_ok(self, umin: Any, umax: Any) -> Any:
        """True where ``[umin, umax]`` lies inside one interval of the domain."""
        if self.domain == REAL:
            return umin == umin  # all True (False for NaN)
        ok = None
        for lo, hi in self.domain:
            inside = (umin >= lo) & (umax <= hi)
            ok = inside if ok is None else ok | inside
        return ok

    def apply(self, x: Any, a: float, b: float, c: float, d: float) -> Any:
        """``c * f(a*x + b) + d`` in sympy (``x`` a sympy expression)."""
        import sympy

        if self.symmetry == "linear":
            return sympy.Float(c) * (sympy.Float(a) * x + sympy.Float(b)) + sympy.Float(d)
        return sympy.Float(c) * self.sympy().subs(_sym(), sympy.Float(a) * x + sympy.Float(b)) \
            + sympy.Float(d)

    def canonical(self, a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        """The canonical parameters of the same function (see the module docstring)."""
        s = self.symmetry
        if s in ("odd", "tan", "sin") and a < 0:
            a, b, c = -a, -b, -c
        elif s in ("even",) and a < 0:
            a, b = -a, -b
        elif s == "acos" and a < 0:  # c*acos(-|a|x - b) = -c*acos(|a|x + b) + c*pi
            a, b, d, c = -a, -b, d + c * math.pi, -c
        elif s == "sigmoid" and a < 0:  # c*s(-v) = -c*s(v) + c
            a, b, d, c = -a, -b, d + c, -c
        if s == "sin":
            if c < 0:
                c, b = -c, b + math.pi
            b = math.remainder(b, 2 * math.pi)
            if b <= -math.pi:
                b += 2 * math.pi
        elif s == "tan":
            b = math.remainder(b, math.pi)
            if b <= -math.pi / 2:
                b += math.pi
        elif s == "exp":
            c, b = c * math.exp(b), 0.0
        elif s == "power" and a != 0:
            p = float(self.power)
            if float(p).is_integer():
                c, b, a = c * a**p, b / a, 1.0
            else:
                c, b, a = c * abs(a) ** p, b / abs(a), math.copysign(1.0, a)
        elif s == "log" and a != 0:
            # log(a x + b) = log|a| + log(sign(a) x + b/|a|)
            d, b, a = d + c * math.log(abs(a)), b / abs(a), math.copysign(1.0, a)
        elif s == "linear":
            c, d, a, b = c * a, c * b + d, 1.0, 0.0
        return float(a), float(b), float(c), float(d)


def _p(name: str, expr: str, cx: float, dom=REAL, sym: str = "none", power: float | None = None):
    return Primitive(name, expr, cx, dom, sym, power)


#: The default library: pykan's SYMBOLIC_LIB without duplicates and without '0' (an edge is
#: zeroed by attribution, never by the library), plus sigmoid, softplus, erf, sinh, cosh, poly3.
DEFAULT: tuple[Primitive, ...] = (
    _p("x", "x", 1, sym="linear"),
    _p("x^2", "x**2", 2, sym="power", power=2),
    _p("x^3", "x**3", 3, sym="power", power=3),
    _p("x^4", "x**4", 3, sym="power", power=4),
    _p("x^5", "x**5", 3, sym="power", power=5),
    _p("1/x", "1/x", 2, NONZERO, "power", -1),
    _p("1/x^2", "x**(-2)", 2, NONZERO, "power", -2),
    _p("1/x^3", "x**(-3)", 3, NONZERO, "power", -3),
    _p("1/x^4", "x**(-4)", 4, NONZERO, "power", -4),
    _p("1/x^5", "x**(-5)", 5, NONZERO, "power", -5),
    _p("sqrt", "sqrt(x)", 2, POS, "power", 0.5),
    _p("x^1.5", "x**(3/2)", 4, POS, "power", 1.5),
    _p("1/sqrt", "1/sqrt(x)", 2, POS, "power", -0.5),
    _p("exp", "exp(x)", 2, sym="exp"),
    _p("log", "log(x)", 2, POS, "log"),
    _p("abs", "Abs(x)", 3, sym="even"),
    _p("sin", "sin(x)", 2, sym="sin"),
    _p("tan", "tan(x)", 3, ((-math.pi / 2, math.pi / 2),), "tan"),
    _p("tanh", "tanh(x)", 3, sym="odd"),
    _p("sgn", "sign(x)", 3, sym="odd"),
    _p("arcsin", "asin(x)", 4, UNIT, "odd"),
    _p("arccos", "acos(x)", 4, UNIT, "acos"),
    _p("arctan", "atan(x)", 4, sym="odd"),
    _p("arctanh", "atanh(x)", 4, UNIT, "odd"),
    _p("gaussian", "exp(-x**2)", 3, sym="even"),
    _p("sigmoid", "1/(1 + exp(-x))", 4, sym="sigmoid"),
    _p("softplus", "log(1 + exp(x))", 4),
    _p("erf", "erf(x)", 4, sym="odd"),
    _p("sinh", "sinh(x)", 4, sym="odd"),
    _p("cosh", "cosh(x)", 4, sym="even"),
    _p("poly3", "poly3", 6, sym="poly"),
)

ALIASES = {"cos": "sin", "x^0.5": "sqrt", "1/x^0.5": "1/sqrt", "1/sqrt(x)": "1/sqrt",
           "sign": "sgn", "asin": "arcsin", "acos": "arccos", "atan": "arctan",
           "atanh": "arctanh", "x^1": "x", "poly": "poly3"}

#: The 10-primitive library of pykan's README/hellokan example.
README = ("x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "abs")


def by_name() -> dict[str, Primitive]:
    return {p.name: p for p in DEFAULT}


def custom(name: str, expr: str, complexity: float, *, domain: Sequence[tuple[float, float]] = REAL,
           symmetry: str = "none") -> Primitive:
    """A user primitive from a sympy string in ``x`` (reloadable: store name, expr, complexity)."""
    return Primitive(name, expr, float(complexity), tuple(tuple(map(float, d)) for d in domain),
                     symmetry)


def resolve(library: Iterable[str | Primitive] | str | None = None) -> tuple[Primitive, ...]:
    """Turn ``library`` into primitives, de-duplicated in first-seen order.

    ``None`` -> :data:`DEFAULT`; ``"readme"`` -> pykan's README library; a comma-separated string
    or a sequence of names (pykan names and aliases accepted) and/or :class:`Primitive` objects.
    A string that is not a known name but parses as a sympy expression in ``x`` becomes a user
    primitive of complexity 3.
    """
    if library is None:
        return DEFAULT
    if isinstance(library, str):
        library = README if library.strip().lower() == "readme" else [
            s.strip() for s in library.split(",") if s.strip()]
    known = by_name()
    out: list[Primitive] = []
    seen: set[str] = set()
    for item in library:
        if isinstance(item, Primitive):
            prim = item
        else:
            name = ALIASES.get(str(item), str(item))
            if name in ("0", "zero"):
                continue  # zeroing is decided by attribution, never by the library
            if name in known:
                prim = known[name]
            else:
                try:
                    prim = custom(name, name, 3)
                except OptionError as exc:
                    raise OptionError(
                        f"unknown primitive {item!r}: use one of {', '.join(known)} or a sympy "
                        f"expression in x ({exc})") from exc
        key = prim.name if prim.symmetry == "poly" else str(prim.sympy())
        if key in seen:
            continue
        seen.add(key)
        out.append(prim)
    if not out:
        raise OptionError("the primitive library is empty; pass at least one primitive name")
    return tuple(out)


def to_spec(library: Sequence[Primitive]) -> list[dict[str, Any]]:
    """JSON-safe description of a library (enough to rebuild it with :func:`from_spec`)."""
    return [{"name": p.name, "expr": p.expr, "complexity": p.complexity,
             "domain": [[lo, hi] for lo, hi in p.domain], "symmetry": p.symmetry,
             "power": p.power} for p in library]


def from_spec(spec: Sequence[dict[str, Any]]) -> tuple[Primitive, ...]:
    def bound(v: Any, default: float) -> float:
        return default if v is None else float(v)

    return tuple(Primitive(d["name"], d["expr"], float(d["complexity"]),
                           tuple((bound(lo, -INF), bound(hi, INF)) for lo, hi in d["domain"]),
                           d.get("symmetry", "none"), d.get("power")) for d in spec)


def poly_value(coef: Sequence[float], x: np.ndarray) -> np.ndarray:
    """Evaluate the cubic fallback ``sum_k coef[k] x^k``."""
    return sum(float(cf) * x**k for k, cf in enumerate(coef))
