"""User formulas are parsed by a whitelist, never evaluated: injections are refused and run nothing.

The attack: ``sympy.sympify`` evaluates its input as Python, so ``--truth`` or ``--library``
could run a shell command. Each entry point below must refuse the string with an
:class:`InspectKitError` (exit 2 on the command line) and create no file.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

from analyses.symbolic import formula as fm
from analyses.symbolic.library import resolve
from inspect_kit.data import Formula
from inspect_kit.errors import InspectKitError
from inspect_kit.formula_parser import parse_formula


def _injections(marker):
    return [f"__import__('os').system('touch {marker}')",
            f"x1 + __import__('os').system('touch {marker}')",
            f"(lambda: __import__('os').system('touch {marker}'))()",
            f"exp(x1).__class__.__init__.__globals__['os'].system('touch {marker}')",
            f"[c for c in ().__class__.__base__.__subclasses__()] or open('{marker}', 'w')"]


def test_parser_refuses_injections_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    x1 = sympy.Symbol("x1")
    for text in _injections(marker):
        with pytest.raises(InspectKitError, match="not allowed"):
            parse_formula(text, {"x1": x1})
        with pytest.raises(InspectKitError):
            Formula(text, ((0, 1),)).sympy()
        with pytest.raises(InspectKitError):
            resolve([text.replace("x1", "x")])
        with pytest.raises(InspectKitError):
            fm.exact_match(x1, text, [x1], np.array([[0.0, 1.0]]))
    assert not marker.exists()


def test_parser_builds_the_same_expression_as_sympy_on_ordinary_formulas():
    syms = fm.input_symbols(3)
    names = {s.name: s for s in syms}
    for text in ["x1/(4*pi*x2**2)", "exp(-(x1/x2)**2/2)/(sqrt(2*pi)*x2)", "x1^2 - x2^3/3",
                 "asin(x1*sin(x2))", "1/(exp(x1*x2/(2*pi*x3)) - 1)", "-x1*x2*cos(x3)",
                 "Abs(x1) + sign(x2) + log(x3, 2) + atan2(x1, x2) + 1.5e-3",
                 "arcsin(x1) + sigmoid(x2) + softplus(x3)"]:
        got = parse_formula(text, names)
        ref = sympy.sympify(text.replace("^", "**").replace("arcsin", "asin").replace(
            "sigmoid(x2)", "1/(1 + exp(-x2))").replace("softplus(x3)", "log(1 + exp(x3))"),
            locals=names)
        assert sympy.simplify(got - ref) == 0, text


@pytest.mark.parametrize("text, why", [
    ("9**9**9", "exponent"), ("x1.real", "Attribute"), ("foo(x1)", "foo"), ("", "empty"),
    ("x1 +", "not an expression"), ("log(x1, base=2)", "keyword"), ("'x1'", "literal"),
    ("y", "unknown name"), ("(" * 500 + "x1" + ")" * 500, "not an expression"),
])
def test_parser_errors_name_what_was_wrong(text, why):
    with pytest.raises(InspectKitError, match=why):
        parse_formula(text, {"x1": sympy.Symbol("x1")})


def test_a_long_sum_parses_without_recursion_limits():
    """3000 terms (a composed formula can be that long; sympify itself fails here)."""
    x1 = sympy.Symbol("x1")
    text = " + ".join(f"{k}*x1**{k % 5}" for k in range(3000)) + " - 7*(x1 - 1)"
    expected = sympy.Add(*[k * x1 ** (k % 5) for k in range(3000)]) - 7 * (x1 - 1)
    assert sympy.expand(parse_formula(text, {"x1": x1}) - expected) == 0


def test_cli_refuses_an_injected_truth_and_library(tmp_path, capsys):
    from inspect_kit.checkpoints import save_checkpoint
    from inspect_kit.cli import main
    from inspect_kit.zoo import build

    model = build("kan", width=[2, 2, 1], grid=3, k=3, seed=0)
    ckpt = tmp_path / "kan.pt"
    save_checkpoint(model, ckpt)
    x = torch.rand(50, 2).numpy()
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=x[:, :1] * x[:, 1:])
    marker, out = tmp_path / "pwned", tmp_path / "r.json"
    base = ["symbolic", str(ckpt), "--data", str(data), "--json", str(out), "--no-progress"]
    for text in _injections(marker)[:2]:
        assert main(base + ["--truth", text]) == 2
        assert main(base + ["--library", "x," + text.replace("x1", "x")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and all("not allowed" in line for line in err)
    assert not marker.exists() and not out.exists()
