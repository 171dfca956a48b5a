"""The three forms of an empirical NTK and the block algebra every method shares.

For samples ``x_i`` (``N`` of them), flattened outputs ``a = 1..O`` and the Jacobian rows
``J_ia = d f_a(x_i) / d theta`` (``P`` parameters), the empirical neural tangent kernel
(Jacot et al. 2018, "Neural Tangent Kernel: Convergence and Generalization in Neural Networks") is

    Theta[i, j, a, b] = <J_ia, J_jb>                       form "full",       (N, N, O, O)
    Theta[i, j]       = sum_a <J_ia, J_ja>                 form "trace",      (N, N)
    Theta[a, i, j]    = <J_ia, J_ja>                       form "per_output", (O, N, N)

("trace" is neural-tangents' ``trace_axes=(-1,)``, "per_output" its ``diagonal_axes=(-1,)``).
As a matrix, "full" is the ``(N O) x (N O)`` matrix ``J J^T`` with rows ``(i, a)``; "trace" is
``N x N``; "per_output" is ``O`` matrices ``N x N`` (the diagonal blocks of "full" in output
order). Methods compute blocks ``rows x cols`` of samples and :func:`put` stores a block and,
by symmetry, its transpose.

>>> import torch
>>> Ja, Jb = torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(4, 2, 5, dtype=torch.float64)
>>> full = block(Ja, Jb, "full")
>>> full.shape, block(Ja, Jb, "trace").shape, block(Ja, Jb, "per_output").shape
(torch.Size([3, 4, 2, 2]), torch.Size([3, 4]), torch.Size([2, 3, 4]))
>>> bool(torch.allclose(reduce_full(full, "trace"), block(Ja, Jb, "trace")))
True
"""

from __future__ import annotations

import torch

from inspect_kit.errors import OptionError

FORMS = ("full", "trace", "per_output")


def check_form(form: str) -> str:
    if form not in FORMS:
        raise OptionError(f"kernel must be one of {FORMS}, got {form!r}")
    return form


def shape(form: str, n: int, o: int) -> tuple[int, ...]:
    """The array shape of a kernel of ``n`` samples and ``o`` outputs in ``form``."""
    return {"full": (n, n, o, o), "trace": (n, n), "per_output": (o, n, n)}[form]


def entries(form: str, n: int, o: int) -> int:
    out = 1
    for s in shape(form, n, o):
        out *= s
    return out


def block(Ja: torch.Tensor, Jb: torch.Tensor, form: str) -> torch.Tensor:
    """The kernel block of Jacobian rows ``Ja (na, O, P)`` and ``Jb (nb, O, P)`` (one GEMM)."""
    na, o, p = Ja.shape
    nb = Jb.shape[0]
    if form == "full":
        return (Ja.reshape(na * o, p) @ Jb.reshape(nb * o, p).T).reshape(na, o, nb, o) \
            .permute(0, 2, 1, 3)
    if form == "trace":
        return Ja.reshape(na, o * p) @ Jb.reshape(nb, o * p).T
    return torch.bmm(Ja.transpose(0, 1), Jb.permute(1, 2, 0))


def reduce_full(full: torch.Tensor, form: str) -> torch.Tensor:
    """A ``(na, nb, O, O)`` block in ``form`` (the trace or the diagonal over outputs)."""
    if form == "full":
        return full
    diag = torch.diagonal(full, dim1=2, dim2=3)  # (na, nb, O)
    return diag.sum(-1) if form == "trace" else diag.permute(2, 0, 1)


def put(K: torch.Tensor, form: str, rows: slice, cols: slice, blk: torch.Tensor) -> None:
    """Store ``blk`` at samples ``rows x cols`` of ``K`` and its transpose at ``cols x rows``."""
    if form == "per_output":
        K[:, rows, cols] = blk
        K[:, cols, rows] = blk.transpose(1, 2)
    elif form == "trace":
        K[rows, cols] = blk
        K[cols, rows] = blk.T
    else:
        K[rows, cols] = blk
        K[cols, rows] = blk.permute(1, 0, 3, 2)


def matrices(K: torch.Tensor, form: str) -> torch.Tensor:
    """The kernel as a stack of symmetric matrices ``(m, M, M)``: one ``(N O) x (N O)`` matrix
    with rows ``(i, a)`` for "full", one ``N x N`` for "trace", ``O`` for "per_output"."""
    if form == "full":
        n, _, o, _ = K.shape
        return K.permute(0, 2, 1, 3).reshape(1, n * o, n * o)
    if form == "trace":
        return K.unsqueeze(0)
    return K
