"""A restricted parser for formulas given as text (``--truth``, ``--library``, data formulas).

``sympy.sympify`` evaluates its input as Python, so a formula string can run code
(``__import__('os').system(...)``). :func:`parse_formula` never evaluates the text: it parses it
with :func:`ast.parse` and builds the sympy expression from a whitelist of syntax:

* numbers (int, float), the constants ``pi`` and ``E``, and the variable names the caller allows;
* ``+ - * / **`` (``^`` means ``**``, as in sympy's default) and unary ``+ -``;
* calls of whitelisted functions by name (:data:`FUNCTIONS`: elementary functions, ``Abs``,
  ``sign``, ``erf``, pykan's names such as ``arcsin``, ``sigmoid`` and ``softplus``) with
  positional arguments.

Anything else (attributes, subscripts, strings, lambdas, comprehensions, keywords, unknown or
underscore names) is refused with :class:`~inspect_kit.errors.OptionError` naming what was
found. Sizes are bounded: the text length, the nesting depth, and numeric powers (a literal
``9**9**9`` would otherwise allocate without end).

>>> import sympy
>>> x = sympy.Symbol("x")
>>> parse_formula("2*sin(pi*x)^2 + 1/2", {"x": x})
2*sin(pi*x)**2 + 1/2
>>> parse_formula("__import__('os').system('true')", {"x": x})
Traceback (most recent call last):
...
inspect_kit.errors.OptionError: formula "__import__('os').system('true')" is not allowed: ...
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable, Mapping
from typing import Any

from .errors import OptionError

MAX_LENGTH = 1_000_000
MAX_DEPTH = 200
MAX_POWER = 1000


def _functions() -> dict[str, tuple[Callable[..., Any], tuple[int, ...]]]:
    import sympy

    one = (1,)
    table: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
        name: (getattr(sympy, name), one) for name in (
            "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "asec",
            "acsc", "sinh", "cosh", "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh",
            "exp", "sqrt", "Abs", "sign", "erf", "erfc", "gamma", "floor", "ceiling",
            "Heaviside", "cbrt")}
    table.update({
        "log": (sympy.log, (1, 2)), "ln": (sympy.log, one), "abs": (sympy.Abs, one),
        "atan2": (sympy.atan2, (2,)), "Min": (sympy.Min, (2, 3, 4)), "Max": (sympy.Max, (2, 3, 4)),
        "arcsin": (sympy.asin, one), "arccos": (sympy.acos, one), "arctan": (sympy.atan, one),
        "arcsinh": (sympy.asinh, one), "arccosh": (sympy.acosh, one),
        "arctanh": (sympy.atanh, one), "sgn": (sympy.sign, one),
        "sigmoid": (lambda u: 1 / (1 + sympy.exp(-u)), one),
        "softplus": (lambda u: sympy.log(1 + sympy.exp(u)), one),
    })
    return table


class _Builder:
    def __init__(self, text: str, names: Mapping[str, Any], what: str):
        import sympy

        self.sympy = sympy
        self.text, self.what = text, what
        self.names = dict(names)
        self.constants = {"pi": sympy.pi, "E": sympy.E}
        self.functions = _functions()

    def refuse(self, why: str) -> OptionError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return OptionError(f'{self.what} "{shown}" is not allowed: {why}; write an expression of '
                           f"{', '.join(sorted(self.names)) or 'numbers'} with + - * / ** and "
                           "functions such as sin, exp, log, sqrt")

    def build(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.refuse(f"nested deeper than {MAX_DEPTH} levels")
        sp = self.sympy
        if isinstance(node, ast.Expression):
            return self.build(node.body, depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            terms = []
            while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
                right = self.build(node.right, depth + 1)
                terms.append(-right if isinstance(node.op, ast.Sub) else right)
                node = node.left
            terms.append(self.build(node, depth + 1))
            return sp.Add(*reversed(terms))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            factors = []
            while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
                right = self.build(node.right, depth + 1)
                factors.append(1 / right if isinstance(node.op, ast.Div) else right)
                node = node.left
            factors.append(self.build(node, depth + 1))
            out = factors[-1]
            for f in reversed(factors[:-1]):
                out = out * f
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            base, ex = self.build(node.left, depth + 1), self.build(node.right, depth + 1)
            if ex.is_number and abs(complex(ex.evalf(15))) > MAX_POWER and not (
                    base.is_number and abs(complex(base.evalf(15))) in (0.0, 1.0)):
                raise self.refuse(f"an exponent above {MAX_POWER} in magnitude")
            return sp.Pow(base, ex)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            v = self.build(node.operand, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.refuse(f"the literal {v!r}")
            return sp.Integer(v) if isinstance(v, int) else sp.Float(v)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in self.constants:
                return self.constants[node.id]
            raise self.refuse(f"the unknown name {node.id!r}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in self.functions:
                what = (node.func.id if isinstance(node.func, ast.Name)
                        else type(node.func).__name__.lower())
                raise self.refuse(f"a call of {what!r} (not a known function)")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise self.refuse("keyword or starred arguments")
            fn, arity = self.functions[node.func.id]
            if len(node.args) not in arity:
                raise self.refuse(f"{node.func.id} with {len(node.args)} arguments")
            return fn(*[self.build(a, depth + 1) for a in node.args])
        raise self.refuse(f"Python syntax ({type(node).__name__})")


def _top_level_terms(text: str) -> list[tuple[int, str]]:
    """``text`` split at its top-level binary ``+``/``-`` into ``(sign, term)`` (so that a sum of
    thousands of terms, as a composed formula can be, does not exhaust Python's parser stack)."""
    toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    depth, cuts, prev = 0, [], None
    for tok in toks:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif (tok.type == tokenize.OP and tok.string in "+-" and depth == 0 and prev is not None
              and (prev.type in (tokenize.NAME, tokenize.NUMBER) or prev.string in ")]}")):
            cuts.append((tok.start[1], 1 if tok.string == "+" else -1))
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.COMMENT):
            prev = tok
    if "\n" in text.strip() or not cuts:
        return [(1, text)]
    out, start, sign = [], 0, 1
    for col, s in cuts:
        out.append((sign, text[start:col]))
        start, sign = col + 1, s
    out.append((sign, text[start:]))
    return out


def parse_formula(text: str, names: Mapping[str, Any], *, what: str = "formula") -> Any:
    """The sympy expression of ``text`` over the symbols ``names`` (``{name: sympy.Symbol}``),
    built without evaluating the text (rules in the module docstring).

    Raises :class:`~inspect_kit.errors.OptionError` for anything outside the whitelist.
    """
    if not isinstance(text, str):
        raise OptionError(f"{what} must be a string, got {type(text).__name__}")
    b = _Builder(text, names, what)
    if not text.strip():
        raise b.refuse("it is empty")
    if len(text) > MAX_LENGTH:
        raise b.refuse(f"longer than {MAX_LENGTH} characters")
    try:
        chunks = _top_level_terms(text.strip().replace("^", "**"))
        trees = [(sign, ast.parse(chunk.strip(), mode="eval")) for sign, chunk in chunks]
    except (SyntaxError, ValueError, RecursionError, MemoryError, tokenize.TokenError) as exc:
        raise b.refuse(f"not an expression ({type(exc).__name__})") from None
    try:
        import sympy

        return sympy.Add(*[b.build(tree) if sign > 0 else -b.build(tree) for sign, tree in trees])
    except OptionError:
        raise
    except RecursionError:
        raise b.refuse("nested too deeply") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise b.refuse(f"{type(exc).__name__}: {exc}") from None


__all__ = ["parse_formula"]
