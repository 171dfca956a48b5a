"""Separable structure of a trained network, found by querying it as an oracle.

AI Feynman (Udrescu & Tegmark 2020, "AI Feynman: a physics-inspired method for symbolic
regression", Sci. Adv. 6:eaay2631, §"Separability") fits a network to the data and then asks the
*network* whether the target splits into functions of fewer variables. We do the same with the
trained KAN (any callable works): for a split of the input variables into ``S`` and its
complement ``C``, evaluate the network on the outer grid ``F_ij = f(x_S^(i), x_C^(j))``
(``x^(i)`` rows of the data, the other variables at a reference point) and measure

    additive        f = g(x_S) + h(x_C)   <=>  F - row means - column means + mean = 0
    multiplicative  f = g(x_S) * h(x_C)   <=>  rank F = 1

by the residuals ``r_add = ||F_dc||_F / ||F - mean(F)||_F`` (``F_dc`` the doubly-centred matrix)
and ``r_mul = sqrt(sum_{k >= 2} s_k^2) / ||F - mean(F)||_F`` (``s_k`` singular values of ``F``;
the centred norm in the denominator so that a constant offset cannot hide structure). A split is
accepted when its residual is below ``tol``; blocks are split recursively until every block is a
single variable.

**Bilinear splits** (new here; AI Feynman has none) cover both and more:

    bilinear        f = a(x_S) + b(x_C) + p(x_S) q(x_C)   <=>   rank F_dc = 1

with ``r_bil`` the singular values of ``F_dc`` beyond the first over ``||F - mean(F)||_F``
(``1 + x2 cos x3``, ``x1 + x2 + 2 sqrt(x1 x2) cos x3``, ``(x1 x3 + x2 x4)/(x1 + x2)`` =
``x4 + (x3 - x4) x1/(x1 + x2)``). Being the most general, and loose on a rough network
(smooth functions are close to bilinear in many splits), it is the last resort: tried only for
a block with no sum or product split and no generalised-additive formula (the block would
otherwise be given up), it must be clear (``r_bil < tol / 3``). The formula uses
double differences of the network at the reference ``r`` and an anchor ``(s', c')`` (the grid
point with the largest one, so ``kappa`` below is far from 0):

    P(x_S) = f(x_S, c') - f(x_S, r_C)      (= const + p(x_S) (q(c') - q(r)))
    Q(x_C) = f(s', x_C) - f(r_S, x_C)      (= const + (p(s') - p(r)) q(x_C))
    kappa  = P(s') - P(r_S)
    f      = f(x_S, r_C) + f(r_S, x_C) - f(r) + (P - P(r_S)) (Q - Q(r_C)) / kappa

(expand both sides to check). ``P`` and ``Q`` are blocks of their own (built recursively, like
any block). Each side ``f(x_S, r_C) - f(r)`` is written ``mu (P - P(r_S)) + rest``, ``mu`` by
least squares: ``rest`` is 0 when the side is affine in ``P`` (then the formula is one product
of two factors plus a constant), else, on two or more variables, ``mu`` is the one that makes
``rest`` additive when one does (the gauge ``p -> p``, ``a -> a - mu p`` of the representation),
else ``rest`` is the plain block.

Each univariate block ``g(x_i)`` (the network with every other variable held at the reference
point) is sampled on a dense grid over the data range and fitted with the primitive library as
one edge, also after AI Feynman's output transforms ``log|y|`` and ``1/y`` (when ``y`` keeps one
sign), so ``exp(sin(pi x))`` or ``1/(a x + b)`` are single fits. The block expressions are
combined as ``g + h - f(ref)`` and ``g h / f(ref)``; the caller refits all constants jointly
against the network and snaps them (:mod:`.formula`).

A block of two or more variables with no additive or multiplicative split, or whose best split
is not clear (residual above ``tol / 3``: a rough network lets a false split through), and the
set of all variables, are tried
for **generalised additivity** ``g(sum_i h_i(x_i))`` (:mod:`.additive`, gradient gate
``tol_general``, then a check against the network); of a split and a generalised-additive
formula the one closer to the network on the block wins (twice as close, or, when the split is
not clear, as close with fewer operations). Only when neither exists is the block, and with
it the route, given up.

When the whole set has no clear split, the network's **output transforms** ``log|f|``,
``1/f`` and ``f^2`` (AI Feynman's; only where ``f`` keeps one sign, and ``f^2`` only when ``f``
has no product split, which it would merely square) are searched for one:
``x1^x2`` has none, but ``log f = x2 log x1`` is a product, so ``f = exp(x2 log x1)``;
``sqrt(x1^2/x2^2 - 1/x3^2)`` squared is a sum; the transformed candidate replaces the other only
by the same closeness rule.

The result is a *candidate*: :func:`analyses.symbolic.api.symbolic` compares it with the
formula composed edge by edge and keeps the simpler one unless it fits worse (rule in
:mod:`.routes`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .library import Primitive
from .univariate import fit_univariate

Net = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Split:
    """One accepted split of ``vars`` into ``left``/``right`` (``kind``: "add", "mul" or
    "bil"; for "bil", ``anchor`` holds the values of the left and the right variables at the
    second point of the double difference, see :func:`best_split`)."""

    kind: str
    left: tuple[int, ...]
    right: tuple[int, ...]
    residual: float
    anchor: tuple[torch.Tensor, torch.Tensor] | None = None


def _grid(fn: Net, ref: torch.Tensor, S: Sequence[int], C: Sequence[int], XS: torch.Tensor,
          XC: torch.Tensor) -> torch.Tensor:
    """``F[i, j] = fn(x with x_S = XS[i], x_C = XC[j], the rest = ref)``."""
    n, m = len(XS), len(XC)
    X = ref.repeat(n * m, 1)
    X[:, list(S)] = XS.repeat_interleave(m, 0)
    X[:, list(C)] = XC.repeat(n, 1)
    with torch.no_grad():
        return fn(X).reshape(n, m).double()


def double_centre(F: torch.Tensor) -> torch.Tensor:
    """``F`` minus its row means and column means, plus its mean (0 for an additive grid)."""
    return F - F.mean(0, keepdim=True) - F.mean(1, keepdim=True) + F.mean()


def residuals(F: torch.Tensor) -> tuple[float, float]:
    """``(r_add, r_mul)`` of an outer-grid matrix ``F`` (definitions in the module docstring)."""
    F = F.double()
    cen = float((F - F.mean()).norm())
    if not math.isfinite(cen) or cen == 0.0:
        return math.inf, math.inf
    dc = double_centre(F)
    s = torch.linalg.svdvals(F)
    return float(dc.norm()) / cen, float(s[1:].norm()) / cen


def bilinear_residual(F: torch.Tensor) -> float:
    """``r_bil`` of an outer-grid matrix ``F``: ``sqrt(sum_{k >= 2} s_k^2) / ||F - mean(F)||_F``
    for ``s_k`` the singular values of the doubly-centred ``F`` (0 when
    ``f = a(x_S) + b(x_C) + p(x_S) q(x_C)``, module docstring)."""
    F = F.double()
    cen = float((F - F.mean()).norm())
    if not math.isfinite(cen) or cen == 0.0:
        return math.inf
    return float(torch.linalg.svdvals(double_centre(F))[1:].norm()) / cen


def best_split(fn: Net, X: torch.Tensor, ref: torch.Tensor, variables: Sequence[int], *,
               tol: float, n_query: int = 48, seed: int = 0,
               kinds: Sequence[str] = ("add", "mul")) -> Split | None:
    """The split of ``variables`` with the smallest residual below ``tol`` (None if none is).

    Tried: every single variable against the rest, and every bipartition when there are at most
    four variables; of ``kinds`` ("add", "mul", "bil"; a bilinear split only below
    ``tol / 3``). A bilinear split's ``anchor`` is the grid point ``(x_S', x_C')`` with the
    largest double difference ``|f(x_S', x_C') - f(x_S', ref_C) - f(ref_S, x_C') + f(ref)|``
    (the divisor of the formula, module docstring).
    """
    V = list(variables)
    if len(V) < 2:
        return None
    g = torch.Generator().manual_seed(seed)
    splits: list[tuple[int, ...]] = [(v,) for v in V]
    if len(V) <= 4:
        for r in range(2, len(V) // 2 + 1):
            splits += [c for c in itertools.combinations(V, r) if c not in splits]
    best: Split | None = None
    score, grids = math.inf, {}
    for S in splits:
        C = tuple(v for v in V if v not in S)
        iS = torch.randperm(len(X), generator=g)[:n_query]
        iC = torch.randperm(len(X), generator=g)[:n_query]
        XS, XC = X[iS][:, list(S)], X[iC][:, list(C)]
        F = _grid(fn, ref, S, C, XS, XC)
        grids[S] = (F, XS, XC)
        r_add, r_mul = residuals(F)
        cands = {"add": (r_add, tol), "mul": (r_mul, tol)}
        if "bil" in kinds:
            cands["bil"] = (bilinear_residual(F), tol / 3)
        for kind in kinds:
            r, limit = cands[kind]
            if r < limit and r < score:
                best, score = Split(kind, tuple(S), C, r), r
    if best is not None and best.kind == "bil":
        F, XS, XC = grids[best.left]
        a = _grid(fn, ref, best.left, best.right, XS, ref[list(best.right)][None])  # f(x_S, ref_C)
        b = _grid(fn, ref, best.left, best.right, ref[list(best.left)][None], XC)  # f(ref_S, x_C)
        with torch.no_grad():
            f_rr = float(fn(ref[None]).double().reshape(-1)[0])
        D = (F - a - b + f_rr).abs()
        i, j = divmod(int(torch.argmax(D)), D.shape[1])
        best = dataclasses.replace(best, anchor=(XS[i].clone(), XC[j].clone()))
    return best


def _reference(fn: Net, X: torch.Tensor, n: int = 256) -> torch.Tensor:
    """The reference point: among ``n`` evenly spaced data rows inside the central half of every
    variable's range (where a network is most accurate), the one with the largest ``|fn|`` (a
    safe divisor for multiplicative blocks); all rows when none is central."""
    idx = torch.linspace(0, len(X) - 1, min(n, len(X))).round().long().unique()
    q = torch.quantile(X.double(), torch.tensor([0.25, 0.75], dtype=torch.float64), dim=0)
    central = ((X[idx] >= q[0]) & (X[idx] <= q[1])).all(1)
    if int(central.sum()) >= 3:
        idx = idx[central]
    with torch.no_grad():
        v = fn(X[idx]).double().reshape(-1).abs()
    return X[idx[int(torch.argmax(v))]].clone()


def _better(new: Any, old: Any, fn: Net, X: torch.Tensor, ref: torch.Tensor,
            V: Sequence[int], syms: Sequence[Any], *, closer_only: bool = False) -> bool:
    """Whether block formula ``new`` matches ``fn`` on the block (data rows of ``V``, the rest
    at ``ref``) with under half the MSE of ``old``, or (unless ``closer_only``) within twice it
    with fewer operations."""
    import sympy

    from .formula import evaluate

    rows = torch.linspace(0, len(X) - 1, min(400, len(X))).round().long().unique()
    Z = ref.repeat(len(rows), 1)
    Z[:, list(V)] = X[rows][:, list(V)]
    with torch.no_grad():
        F = fn(Z).double().reshape(-1)

    def mse(e: Any) -> float:
        v = float(((evaluate(e, syms, Z) - F) ** 2).mean())
        return v if math.isfinite(v) else math.inf

    m_new, m_old = mse(new), mse(old)
    if not closer_only and sympy.count_ops(new) < sympy.count_ops(old):
        return m_new <= 2 * m_old
    return m_new < 0.5 * m_old


def separable_formula(fn: Net, X: torch.Tensor, library: Sequence[Primitive], syms: Sequence[Any],
                      *, tol: float = 1e-2, n_points: int = 201, seed: int = 0,
                      noise_mse: float = 0.0, tol_general: float | None = 0.03,
                      transforms: bool = True, alternatives: list[Any] | None = None,
                      ) -> tuple[Any | None, dict[str, Any]]:
    """A formula of ``fn`` (scalar output) built from separable blocks, or None.

    None when some block of two or more variables has no split below ``tol`` and is not
    generalised-additive within ``tol_general`` (None: not tried); then the network's structure
    is not separable and the edge-by-edge formula is the one to use. ``info`` records the splits,
    residuals and each univariate fit. ``noise_mse``: the network's own MSE on the data (see
    :func:`analyses.symbolic.univariate.fit_univariate`). ``transforms``: when the whole set
    has no clear split, also try :data:`OUTPUT_TRANSFORMS` of ``fn`` (module docstring); of
    the candidates the one closer to the network wins (as between split and generalised).

    ``alternatives``: a list to which whole-formula variants are appended, each the returned
    formula with one univariate leaf or one generalised-additive block replaced by a runner-up
    that the network's values could not tell apart from the chosen one (see
    :func:`analyses.symbolic.additive.generalised_formula`); the caller may let the data choose.
    """
    import sympy

    from .additive import generalised_formula, monomial_formula

    X = X.double()
    ref = _reference(fn, X)
    lo, hi = X.min(0).values, X.max(0).values
    info: dict[str, Any] = {"splits": [], "leaves": [], "tol": tol}
    want = alternatives is not None
    chosen: dict[Any, Any] = {}  # placeholder symbol -> the block's chosen expression
    options: dict[Any, list[Any]] = {}  # placeholder symbol -> its runners-up
    split_of: dict[Any, Any] = {}  # placeholder of a generalised block -> the split it beat

    def hold(expr: Any, alts: list[Any]) -> Any:
        """``expr``, or a placeholder for it when it has runners-up (swapped in at the end)."""
        if not alts:
            return expr
        P = sympy.Dummy(f"block{len(chosen)}")
        chosen[P], options[P] = expr, alts
        return P

    def resolve(e: Any, override: dict[Any, Any] | None = None) -> Any:
        """``e`` with every placeholder replaced (``override`` first), also placeholders inside
        a replacement (a block's runner-up can be a formula with placeholders of its own)."""
        if e is None or not chosen:
            return e
        m = {**chosen, **(override or {})}
        for _ in range(len(m) + 1):
            if not (e.free_symbols & m.keys()):
                break
            e = e.xreplace(m)
        return e

    def reachable(e: Any) -> list[Any]:
        """The placeholders in ``e`` and, recursively, in their chosen expressions."""
        out, todo = [], [e]
        while todo:
            for P in sorted(todo.pop().free_symbols & chosen.keys(), key=str):
                if P not in out:
                    out.append(P)
                    todo.append(chosen[P])
        return out

    def build(variables: tuple[int, ...], f: Net = fn) -> Any | None:
        """A formula of ``f`` on the block ``variables`` (the rest at ``ref``), or None."""
        with torch.no_grad():
            f_r = float(f(ref[None]).double().reshape(-1)[0])
        if len(variables) == 1:
            i = variables[0]
            xs = torch.linspace(float(lo[i]), float(hi[i]), n_points, dtype=torch.float64)
            Xq = ref.repeat(n_points, 1)
            Xq[:, i] = xs
            with torch.no_grad():
                ys = f(Xq).double().reshape(-1)
            if float(ys.max() - ys.min()) <= 1e-12 * max(1.0, float(ys.abs().max())):
                info["leaves"].append({"var": i, "function": "constant"})
                return sympy.Float(float(ys.mean()))
            expr, leaf = fit_univariate(xs, ys, library, syms[i], noise_mse=noise_mse,
                                        alternatives=LEAF_ALTERNATIVES if want else 0)
            alts = [a for a, _ in leaf.pop("_alternatives", [])]
            info["leaves"].append({"var": i, **leaf})
            return hold(expr, alts)
        sp = best_split(f, X, ref, variables, tol=tol, seed=seed)
        entry: dict[str, Any] = {"vars": list(variables), "split": None}
        info["splits"].append(entry)
        split_expr = None
        if sp is not None:
            entry.update(kind=sp.kind, split=sp.kind, left=list(sp.left), right=list(sp.right),
                         residual=sp.residual)
            left, right = build(sp.left, f), build(sp.right, f)
            if left is not None and right is not None:
                c = sympy.Float(f_r)
                split_expr = left + right - c if sp.kind == "add" else left * right / c
            top = len(variables) == X.shape[1]
            if split_expr is not None and sp.residual <= tol / 3 and not top:
                return split_expr  # a clear split (the whole set is always compared)
        if tol_general is None:
            return split_expr if split_expr is not None else last_resort(variables, f, f_r, entry)
        gen_expr, gen = generalised_formula(f, X, ref, variables, library, syms,
                                            tol=tol_general, noise_mse=noise_mse,
                                            alternatives=40 if want else 0)
        gen_alts = gen.pop("_alternatives", [])
        entry["general"] = gen
        kind = "general"
        if gen_expr is None and len(variables) in (2, 3):  # g(x1^a x2^b ...) without gradients
            gen_expr, mono = monomial_formula(f, X, ref, variables, library, syms,
                                              noise_mse=noise_mse, alternatives=8 if want else 0)
            gen_alts, entry["monomial"], kind = mono.pop("_alternatives", []), mono, "monomial"
        clear = sp is not None and sp.residual <= tol / 3
        if gen_expr is None:
            return split_expr if split_expr is not None else last_resort(variables, f, f_r, entry)
        if split_expr is not None and not _better(gen_expr, resolve(split_expr), f, X, ref,
                                                  variables, syms, closer_only=clear):
            return hold(split_expr, [gen_expr, *gen_alts]) if want else split_expr
        entry["split"] = kind
        # the split the network liked less stays a runner-up: the data may prefer it
        P = hold(gen_expr, [*([split_expr] if want and split_expr is not None else []),
                            *gen_alts])
        if want and split_expr is not None:
            split_of[P] = split_expr
        return P

    def last_resort(variables: tuple[int, ...], f: Net, f_r: float,
                    entry: dict[str, Any]) -> Any | None:
        """A bilinear split of a block that would otherwise be given up, or None."""
        sp = best_split(f, X, ref, variables, tol=tol, seed=seed, kinds=("bil",))
        if sp is None:
            return None
        entry.update(kind="bil", split="bil", left=list(sp.left), right=list(sp.right),
                     residual=sp.residual)
        return bilinear(f, f_r, sp, entry)

    def bilinear(f: Net, f_r: float, sp: Split, entry: dict[str, Any]) -> Any | None:
        """``f = a(x_S) + b(x_C) + p(x_S) q(x_C)`` from four blocks (module docstring)."""
        S, C = list(sp.left), list(sp.right)
        sa, ca = sp.anchor

        def at(Z: torch.Tensor, cols: list[int], vals: torch.Tensor) -> torch.Tensor:
            Z = Z.clone()
            Z[:, cols] = vals
            return Z

        def P_fn(Z: torch.Tensor) -> torch.Tensor:  # b(c') - b(r) + p(x_S) (q(c') - q(r))
            return f(at(Z, C, ca)).double() - f(at(Z, C, ref[C])).double()

        def Q_fn(Z: torch.Tensor) -> torch.Tensor:  # a(s') - a(r) + (p(s') - p(r)) q(x_C)
            return f(at(Z, S, sa)).double() - f(at(Z, S, ref[S])).double()

        with torch.no_grad():
            P_r = float(P_fn(ref[None]).reshape(-1)[0])
            Q_r = float(Q_fn(ref[None]).reshape(-1)[0])
            kappa = float(P_fn(at(ref[None], S, sa)).reshape(-1)[0]) - P_r
        entry["kappa"] = kappa
        if not math.isfinite(kappa) or kappa == 0.0:
            return None
        # each side f(x_S, ref_C) - f_r = a(x_S) - a(r) + p(x_S) q(r) - p(r) q(r) is written
        # mu (P - P_r) + rest(x_S), with mu by least squares on network values: the rest is 0
        # when the side is affine in P (a constant a, or a = p), else, for two or more
        # variables, mu is the one that makes the rest additive where it can be (x1 + x2 +
        # 2 sqrt(x1 x2) cos(x3): rest x1 + x2), else 0 (rest the plain block)
        rows = torch.linspace(0, len(X) - 1, min(400, len(X))).round().long().unique()
        Zall = ref.repeat(len(rows), 1)
        Zall[:, S + C] = X[rows][:, S + C]
        with torch.no_grad():
            var_f = float(f(Zall).double().var())
        floor = max(10.0 * noise_mse, 1e-6 * var_f)
        g = torch.Generator().manual_seed(seed)

        def side(block: list[int], D_fn: Net, D_r: float, name: str) -> tuple[float, Any]:
            Z = ref.repeat(len(rows), 1)
            Z[:, block] = X[rows][:, block]
            with torch.no_grad():
                a = f(Z).double().reshape(-1) - f_r
                d = D_fn(Z).double().reshape(-1) - D_r
            mu = float((a * d).sum() / (d * d).sum().clamp_min(1e-300))
            if float(((a - mu * d) ** 2).mean()) <= floor:
                entry[name] = "affine"
                return mu, sympy.Integer(0)
            if len(block) >= 2:  # doubly-centred grids of a and d over each variable vs the rest
                da, dd = [], []
                for v in block:
                    rest = [u for u in block if u != v]
                    iv = torch.randperm(len(X), generator=g)[:24]
                    ir = torch.randperm(len(X), generator=g)[:24]
                    Fa = _grid(f, ref, [v], rest, X[iv][:, [v]], X[ir][:, rest])
                    Fd = _grid(D_fn, ref, [v], rest, X[iv][:, [v]], X[ir][:, rest])
                    da.append(double_centre(Fa).reshape(-1))
                    dd.append(double_centre(Fd).reshape(-1))
                A_, D_ = torch.cat(da), torch.cat(dd)
                m = float((A_ * D_).sum() / (D_ * D_).sum().clamp_min(1e-300))
                if float((A_ - m * D_).norm()) <= tol * float(A_.norm()):

                    def R_fn(Z: torch.Tensor, m: float = m) -> torch.Tensor:
                        return f(Z).double() - m * (D_fn(Z).double() - D_r)

                    rest_e = build(tuple(block), R_fn)
                    if rest_e is not None:
                        entry[name] = "gauge"
                        return m, rest_e - sympy.Float(f_r)
            entry[name] = "block"
            rest_e = build(tuple(block), f)
            return 0.0, None if rest_e is None else rest_e - sympy.Float(f_r)

        Pe, Qe = build(tuple(S), P_fn), build(tuple(C), Q_fn)
        if Pe is None or Qe is None:
            return None
        alpha, rest_S = side(S, P_fn, P_r, "left_side")
        beta, rest_C = side(C, Q_fn, Q_r, "right_side")
        if rest_S is None or rest_C is None:
            return None
        p, q, k = Pe - sympy.Float(P_r), Qe - sympy.Float(Q_r), sympy.Float(kappa)
        # f_r + rest_S + rest_C + alpha p + beta q + p q / kappa, the last three as one product
        return (rest_S + rest_C + (p + sympy.Float(beta * kappa)) * (q + sympy.Float(alpha * kappa))
                / k + sympy.Float(f_r - alpha * beta * kappa))

    V = tuple(range(X.shape[1]))
    expr = build(V)
    if want and expr is not None:  # round robin over the blocks: a cap keeps every block's best
        held = [(P, options[P]) for P in reachable(expr)]

        def swap(P: Any, alt: Any) -> Any:
            """``expr`` with block ``P`` replaced by ``alt``; inside ``alt`` every generalised
            block takes the split it beat (a split runner-up is split all the way down)."""
            ov, todo = {P: alt}, [alt]
            while todo:
                for Q in todo.pop().free_symbols & split_of.keys():
                    if Q not in ov:
                        ov[Q] = split_of[Q]
                        todo.append(split_of[Q])
            return resolve(expr, ov)

        for n in range(max((len(a) for _, a in held), default=0)):
            alternatives.extend(swap(P, alts[n]) for P, alts in held if n < len(alts))
    expr = resolve(expr)
    top = info["splits"][0] if info["splits"] else None
    clear = (top is not None and top.get("split") in ("add", "mul")
             and top.get("residual", math.inf) <= tol / 3)
    if transforms and len(V) >= 2 and not clear:
        for name in OUTPUT_TRANSFORMS:
            if name == "sq" and top is not None and top.get("kind") == "mul":
                # f = g h gives f^2 = g^2 h^2: the same split, nothing new, and a full search
                info.setdefault("output_transforms", []).append(
                    {"transform": name, "applies": False, "skipped": "f has a product split"})
                continue
            cand, tinfo = _transformed_formula(fn, X, ref, name, library, syms, tol=tol,
                                               n_points=n_points, seed=seed,
                                               noise_mse=noise_mse, tol_general=tol_general)
            info.setdefault("output_transforms", []).append({"transform": name, **tinfo})
            if cand is not None and (expr is None or _better(cand, expr, fn, X, ref, V, syms)):
                expr = cand
                info["output_transform"] = name
    return expr, info


#: Output transforms ``T`` tried when the network itself has no clear top-level split: a clear
#: split of ``T(f)`` gives ``f = T^{-1}(formula of T(f))`` (``exp(x2 log x1)`` = ``x1^x2``;
#: ``f^2 = x1^2/x2^2 - 1/x3^2`` gives ``sqrt(x1^2/x2^2 - 1/x3^2)``).
OUTPUT_TRANSFORMS = ("log", "inv", "sq")
#: runners-up per one-variable leaf handed to the data's arbitration (half the most accurate,
#: half the simplest, :func:`analyses.symbolic.univariate.fit_univariate_batch`)
LEAF_ALTERNATIVES = 24


def _transformed_formula(fn: Net, X: torch.Tensor, ref: torch.Tensor, name: str,
                         library: Sequence[Primitive], syms: Sequence[Any], *, tol: float,
                         n_points: int, seed: int, noise_mse: float,
                         tol_general: float | None) -> tuple[Any | None, dict[str, Any]]:
    """``T^{-1}(g)`` for ``g`` the separable formula of ``T(fn)`` (``T``: ``log|f|``, ``1/f``
    or ``f^2``), or None: ``T`` applies only when ``fn`` keeps one sign on the data with
    ``min |f| > 1e-3 max |f|``, and ``T(fn)`` must have a clear split (residual below
    ``tol / 3``). ``noise_mse`` is carried through ``T'`` (mean of ``T'(f)^2``)."""
    import sympy

    rows = torch.linspace(0, len(X) - 1, min(400, len(X))).round().long().unique()
    with torch.no_grad():
        F = fn(X[rows]).double().reshape(-1)
    amin, amax = float(F.abs().min()), float(F.abs().max())
    sign = 1.0 if float(F[0]) > 0 else -1.0
    if not (bool((F > 0).all() or (F < 0).all()) and amin > 1e-3 * amax):
        return None, {"applies": False}

    def fnT(Z: torch.Tensor) -> torch.Tensor:
        v = fn(Z).double()
        return torch.log(v.abs()) if name == "log" else 1.0 / v if name == "inv" else v * v

    dT2 = {"log": (1.0 / F.abs()) ** 2, "inv": (1.0 / F**2) ** 2, "sq": (2.0 * F) ** 2}[name]
    sp = best_split(fnT, X, ref, tuple(range(X.shape[1])), tol=tol, seed=seed)
    info: dict[str, Any] = {"applies": True, "split": None if sp is None else sp.kind,
                            "residual": None if sp is None else sp.residual}
    if sp is None or sp.residual > tol / 3:
        return None, info
    g, ginfo = separable_formula(fnT, X, library, syms, tol=tol, n_points=n_points, seed=seed,
                                 noise_mse=noise_mse * float(dT2.mean()),
                                 tol_general=tol_general, transforms=False)
    info["inner"] = ginfo
    if g is None:
        return None, info
    out = {"log": lambda: sign * sympy.exp(g), "inv": lambda: 1 / g,
           "sq": lambda: sign * sympy.sqrt(g)}[name]()
    return out, info


__all__ = ["OUTPUT_TRANSFORMS", "Split", "best_split", "bilinear_residual", "double_centre",
           "fit_univariate", "residuals", "separable_formula"]
