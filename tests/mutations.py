"""Re-plant the bugs of ``tests/MUTATIONS.md`` one at a time and check that the tests catch them.

Each mutation replaces one exact piece of library code (which must occur exactly once) by a
realistic bug: a sign, an axis, an index, a pass count, an option that is not passed on. The
script copies the repository's files (tracked and untracked, not ignored) into a temporary
folder once, and for every mutation edits the copy, runs the mutation's tests there with
``PYTHONPATH`` set to the copy (the default marker expression ``not slow``, stop at the first
failure), restores the file, and reports ``caught`` (a test failed), ``missed`` (all passed) or
``error`` (the mutation no longer applies, or pytest could not run). The working tree is never
touched.

The tests listed per mutation are part of the default suite, so "caught" means the default
suite fails; ``--suite`` runs the whole default suite instead (slow: minutes per mutation).
Before the mutations, the same tests run on the unmodified copy and must pass.

    python tests/mutations.py                 # all mutations, their own tests
    python tests/mutations.py --only lmc      # mutations whose id contains "lmc"
    python tests/mutations.py --list          # what would be planted, and the catching tests
    python tests/mutations.py --suite         # the whole default suite per mutation
    python tests/mutations.py --only lanczos-no --tests NODE_ID   # does that test alone catch it?

This is a slow job (about 5 minutes of CPU, 10 minutes wall on a loaded 2-core machine); run it with
``OMP_NUM_THREADS=1`` on a quiet machine or under ``nice``. ``tests/test_mutations.py`` wraps it
as a ``@pytest.mark.slow`` test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One planted bug: ``old`` (exactly once in ``file``) becomes ``new``."""

    id: str
    file: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...]


M = Mutation

H_NEW = "tests/test_hessian_independent.py"
H_OP = "tests/test_hessian_operator.py"
H_ACC = "tests/test_hessian_accuracy.py"
VIEW = "tests/test_view.py"
ESD = "tests/test_esd_quantities.py"
ESD_CORE = "tests/test_esd_core.py"
LMC = "tests/test_lmc_independent.py"
LMC_OLD = "tests/test_lmc_matching.py"
LAND = "tests/test_landscape_independent.py"
LAND_OLD = "tests/test_landscape_grid.py"
ATT = "tests/test_attention_independent.py"
ATT_OLD = "tests/test_attention_stats.py"
SYM = "tests/test_symbolic_mutation_guards.py"
DEG = "tests/test_symbolic_degenerate.py"
ARB = "tests/test_symbolic_arbitration.py"
SYMM = "tests/test_symbolic_symmetry.py"
BIL = "tests/test_symbolic_bilinear.py"
PLOTS = "tests/test_plot_content.py"
CLI = "tests/test_cli_equals_api.py"


def _local_orthogonalisation(indent: str, basis: str, vec: str, out: str) -> str:
    """Code that orthogonalises ``vec`` against the last two vectors of ``basis`` only."""
    return (f"{indent}{out}, c = {vec}, {vec}.new_zeros({basis}.m)\n"
            f"{indent}for jj in range(max(0, {basis}.m - 2), {basis}.m):  # three-term only\n"
            f"{indent}    c[jj] = {basis}.vector(jj) @ {out}\n"
            f"{indent}    {out} = {out} - c[jj] * {basis}.vector(jj)\n")


MUTATIONS = (
    # -- hessian ---------------------------------------------------------------------------
    M("hessian-lanczos-no-reorthogonalisation", "analyses/hessian/lanczos.py",
      "            w, c = Q.orthogonalize(w)\n",
      _local_orthogonalisation("            ", "Q", "w", "w"),
      "Lanczos orthogonalises each new vector against the last two basis vectors only (the "
      "plain three-term recurrence): ghost copies of converged eigenvalues", (H_NEW, H_ACC)),
    M("hessian-slq-no-reorthogonalisation", "analyses/hessian/lanczos.py",
      "            wi, c = bases[i].orthogonalize(w[i].clone())\n",
      _local_orthogonalisation("            ", "bases[i]", "w[i].clone()", "wi"),
      "SLQ's Lanczos (lanczos_tridiag) without reorthogonalisation: ghost quadrature nodes",
      (H_NEW, H_ACC)),
    M("hessian-lanczos-stops-at-breakdown", "analyses/hessian/lanczos.py",
      "if products - fresh >= first and np.all(err <= tol * norm) and not breakdown:",
      "if products >= first and np.all(err <= tol * norm):",
      "Lanczos trusts converged Ritz values at a breakdown instead of searching the complement "
      "for copies of repeated eigenvalues (the behaviour fixed with these tests)", (H_NEW,)),
    M("hessian-density-threshold-ignored", "analyses/hessian/api.py",
      "threshold=density_threshold,\n                        deflate=density_deflate",
      "threshold=None,\n                        deflate=density_deflate",
      "hessian() does not pass density_threshold on to SLQ (the default 1e-3 max|lambda| is "
      "used)", (H_NEW,)),
    M("hessian-density-deflate-ignored", "analyses/hessian/api.py",
      "deflate=density_deflate, seed=seed + 2", "deflate=20, seed=seed + 2",
      "hessian() does not pass density_deflate on to SLQ (always 20)", (H_NEW,)),
    M("hessian-include-dropped", "analyses/hessian/api.py",
      "view = make_view(model, data, loss=loss, include=include,",
      "view = make_view(model, data, loss=loss, include=None,",
      "hessian() builds its view without include= (every parameter is differentiated)",
      (H_NEW, H_OP)),
    M("hessian-custom-block-all-patterns", "analyses/hessian/blocks.py",
      "any(fnmatchcase(n, p) for p in pats)", "all(fnmatchcase(n, p) for p in pats)",
      "a custom block with several glob patterns takes the parameters matching all of them "
      "instead of any", (H_NEW,)),
    M("hessian-param-blocks-keyed-by-layer", "analyses/hessian/blocks.py",
      "        return {n: [n] for n in names}\n",
      "        return {n.rsplit(\".\", 1)[0]: [n] for n in names}\n",
      "blocks='param' keys the blocks by their layer, so a layer's bias block replaces its "
      "weight block", (H_NEW,)),
    M("hessian-exact-blocks-ascending", "analyses/hessian/api.py",
      "\"eigenvalues\": ev[::-1].copy()", "\"eigenvalues\": ev.copy()",
      "method='exact' block eigenvalues are stored ascending instead of descending", (H_NEW,)),
    # -- the model view --------------------------------------------------------------------
    M("view-batch-weight-equal", "inspect_kit/view/core.py",
      "        return b.n / self.n_samples\n", "        return 1.0 / len(self.batches)\n",
      "every batch weighs 1/len(batches) instead of n_b/N (uneven last batch)", (VIEW, H_NEW)),
    M("view-gradient-unweighted", "inspect_kit/view/core.py",
      "                total.add_(g, alpha=self.weight(b))\n", "                total.add_(g)\n",
      "the view's gradient sums the batch gradients instead of weighting them by n_b/N",
      (VIEW,)),
    M("view-train-mode-buffers-shared", "inspect_kit/view/core.py",
      "            s.update({k: s[k].clone() for k in self.buffer_names})\n",
      "            pass\n",
      "train mode evaluates on the view's buffers instead of fresh copies: BatchNorm writes its "
      "running statistics into the model", (VIEW,)),
    M("view-sample-draw-unsorted", "inspect_kit/view/batches.py",
      "idx = torch.randperm(merged.n, generator=g)[:samples].sort().values",
      "idx = torch.randperm(merged.n, generator=g)[:samples]",
      "samples= draws in random order instead of keeping the data order", (VIEW,)),
    # -- esd -------------------------------------------------------------------------------
    M("esd-entropy-normalised-by-count", "analyses/esd/metrics.py",
      "/ math.log(rank)) if rank > 1", "/ math.log(len(ev))) if rank > 1",
      "matrix entropy normalised by log(number of eigenvalues) instead of log(rank)", (ESD,)),
    M("esd-log-alpha-norm-power-of-sum", "analyses/esd/metrics.py",
      "np.log10(np.sum(ev ** alpha))", "np.log10(np.sum(ev) ** alpha)",
      "log_alpha_norm = log10 (sum lambda)^alpha instead of log10 sum lambda^alpha", (ESD,)),
    M("esd-randomize-not-shuffled", "analyses/esd/api.py",
      "spectra.shuffled(lm.mats, rng)", "list(lm.mats)",
      "randomize=True analyses the original matrix instead of the element-shuffled one",
      (ESD, ESD_CORE)),
    M("esd-mp-spikes-without-tracy-widom-margin", "analyses/esd/metrics.py",
      "lam > bulk_max + math.sqrt(tw)", "lam > bulk_max",
      "MP spikes counted above the bulk edge without the Tracy-Widom margin", (ESD, ESD_CORE)),
    # -- lmc -------------------------------------------------------------------------------
    M("lmc-barrier-mean-first-last", "analyses/lmc/interpolate.py",
      "(endpoints: the values at t = 0 and t = 1).\"\"\"\n"
      "    t, v = np.asarray(t, float), np.asarray(values, float)\n"
      "    lo, hi = v[np.argmin(t)], v[np.argmax(t)]\n",
      "(endpoints: the values at t = 0 and t = 1).\"\"\"\n"
      "    t, v = np.asarray(t, float), np.asarray(values, float)\n"
      "    lo, hi = v[0], v[-1]\n",
      "barrier_mean takes the curve's first and last values instead of those at t = 0 and 1",
      (LMC,)),
    M("lmc-barrier-linear-first-last", "analyses/lmc/interpolate.py",
      "(never below 0: the endpoints score 0).\"\"\"\n"
      "    t, v = np.asarray(t, float), np.asarray(values, float)\n"
      "    lo, hi = v[np.argmin(t)], v[np.argmax(t)]\n",
      "(never below 0: the endpoints score 0).\"\"\"\n"
      "    t, v = np.asarray(t, float), np.asarray(values, float)\n"
      "    lo, hi = v[0], v[-1]\n",
      "barrier_linear takes the curve's first and last values instead of those at t = 0 and 1",
      (LMC,)),
    M("lmc-weight-matching-biases-ignored", "analyses/lmc/weight_matching.py",
      "        if not a.is_floating_point():\n            continue\n",
      "        if a.dim() < 2:\n            continue\n",
      "weight matching leaves biases (1-D tensors) out of the assignment cost", (LMC, LMC_OLD)),
    M("lmc-weight-matching-stale-neighbours", "analyses/lmc/weight_matching.py",
      "            b = permute_axis(b, ax, perms, skip=g)\n", "            b = b\n",
      "the assignment cost of a group ignores the current permutations of the other groups",
      (LMC, LMC_OLD)),
    M("lmc-activation-matching-self-correlation", "analyses/lmc/activation_matching.py",
      "corr = (za.T @ zb / len(za)).numpy()", "corr = (za.T @ za / len(za)).numpy()",
      "activation matching correlates A with itself instead of with B", (LMC, LMC_OLD)),
    # -- landscape -------------------------------------------------------------------------
    M("landscape-conv-filters-per-kernel", "analyses/landscape/directions.py",
      "            elif (type(mod).__name__, p_name) in _EDGE_COEF and p.dim() == 3:\n",
      "            elif p.dim() >= 3:\n",
      "filter normalisation treats every (out, in) kernel of a convolution as a filter instead "
      "of every output channel", (LAND,)),
    M("landscape-pca-sign-flipped", "analyses/landscape/directions.py",
      "if float(torch.dot(torch.from_numpy(M[0]), v)) < 0:",
      "if float(torch.dot(torch.from_numpy(M[0]), v)) > 0:",
      "the PCA sign convention is reversed (the start of training gets a negative coordinate)",
      (LAND,)),
    M("landscape-grid-xy-indexing", "analyses/landscape/api.py",
      "mesh = np.stack(np.meshgrid(*axes, indexing=\"ij\"), -1)",
      "mesh = np.stack(np.meshgrid(*axes, indexing=\"xy\"), -1)",
      "the plane's grid is laid out (b, a) instead of (a, b): the loss surface is transposed",
      (LAND, LAND_OLD)),
    # -- attention -------------------------------------------------------------------------
    M("attention-statistics-per-image", "analyses/attention/stats.py",
      "    n = ok.sum((0, 2)).clamp_min(1)\n    return v.sum((0, 2)) / n\n",
      "    n = ok.sum((1, 2)).clamp_min(1)\n    return v.sum((1, 2)) / n\n",
      "row statistics averaged over heads and queries (one value per image) instead of over "
      "images and queries (one per head)", (ATT, ATT_OLD)),
    M("attention-grid-column-major", "analyses/attention/stats.py",
      "torch.meshgrid(torch.arange(h), torch.arange(w), indexing=\"ij\")",
      "torch.meshgrid(torch.arange(h), torch.arange(w), indexing=\"xy\")",
      "patch positions enumerated column-major: wrong distances on non-square grids", (ATT,)),
    M("attention-score-range-max-unmasked", "analyses/attention/stats.py",
      "    hi = torch.where(fin, x, torch.full_like(x, -math.inf))",
      "    hi = torch.where(torch.isfinite(x), x, torch.full_like(x, -math.inf))",
      "the score-range maximum includes padding queries and keys", (ATT,)),
    M("attention-spectrum-padding-queries-kept", "analyses/attention/stats.py",
      "        a = torch.where(qv[..., None] & kv, a,", "        a = torch.where(kv, a,",
      "the spectrum zeroes padding keys but keeps padding query rows", (ATT,)),
    M("attention-rollout-reversed-product", "analyses/attention/rollout.py",
      "        r = ((1.0 - residual) * f + residual * eye) @ r\n",
      "        r = r @ ((1.0 - residual) * f + residual * eye)\n",
      "rollout accumulates R <- R A_l instead of A_l R (layers multiplied in reverse order)",
      (ATT, "tests/test_attention_rollout.py")),
    # -- symbolic --------------------------------------------------------------------------
    M("symbolic-bic-penalty-sign", "analyses/symbolic/select.py",
      "+ cx[k] * np.log(n) for k in front}", "- cx[k] * np.log(n) for k in front}",
      "rule='bic' rewards complexity instead of penalising it", (SYM,)),
    M("symbolic-bic-held-out-count-dropped", "analyses/symbolic/api.py",
      "choose(table, rule=rule, n_val=len(keep))", "choose(table, rule=rule)",
      "symbolic() leaves BIC's n at its default 100 instead of the held-out count (the bug "
      "fixed with these tests)", (SYM,)),
    M("symbolic-pareto-best-not-updated", "analyses/symbolic/select.py",
      "            front.append(k)\n            best = err[k]\n",
      "            front.append(k)\n",
      "the Pareto front keeps every eligible fit (the best error so far is never updated)",
      (SYM, "tests/test_symbolic_fit.py")),
    M("symbolic-arbitration-keeps-the-network-choice", "analyses/symbolic/routes.py",
      "    if not decisive:\n", "    if True:\n",
      "the data never overrule the network's choice of leaf or outer function",
      (ARB,)),
    M("symbolic-trust-region-jacobian-columns-swapped", "analyses/symbolic/formula.py",
      "            return J\n", "            return J.flip(1)\n",
      "the trust-region refit's Jacobian puts each constant's column in the wrong place",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-simple-runners-up-skip-the-shape-check", "analyses/symbolic/univariate.py",
      "                        or mse > loose):\n", "                        or mse > var_y):\n",
      "simple-primitive runners-up listed whatever their shape (a fit that misses by 100 % too)",
      (ARB,)),
    M("symbolic-split-runner-up-not-split-down", "analyses/symbolic/structure.py",
      "                    if Q not in ov:\n", "                    if False:\n",
      "a split beaten by a generalised block keeps its nested generalised blocks",
      (ARB,)),
    M("symbolic-lsq-refit-residual-sign", "analyses/symbolic/formula.py",
      "            r = (fn(*cols, *torch.as_tensor(th, dtype=torch.float64).unbind()) - y).numpy()\n",
      "            r = (y - fn(*cols, *torch.as_tensor(th, dtype=torch.float64).unbind())).numpy()\n",
      "the trust-region refit's residual has the wrong sign (its Jacobian is that of fn - y)",
      (ARB,)),
    M("symbolic-snap-from-the-network-constants", "analyses/symbolic/snap.py",
      "    if (m := mse(start)) < cur_mse:\n", "    if False:\n",
      "snapping looks for simple constants near the network's constants, not the data's",
      (ARB,)),
    M("symbolic-snap-first-allowed", "analyses/symbolic/snap.py",
      "                if best is None or score < best[0]:\n",
      "                if best is None:\n",
      "the first snap the fit allows is kept (by bits), not the shortest two-part code",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-snap-no-resolution", "analyses/symbolic/snap.py",
      "RESOLUTION = 1e-10\n", "RESOLUTION = 0.0\n",
      "the two-part code counts MSE differences down to rounding (tiny offsets snap to decimals)",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-snap-tiny-decimals", "analyses/symbolic/snap.py",
      "DECIMALS = (1e-3, 1e4)\n", "DECIMALS = (1e-300, 1e4)\n",
      "tiny values get decimal candidates (177/10^8 for an offset that is 0)",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-snap-no-decimals", "analyses/symbolic/snap.py",
      "        for digits in (1, 2, 3):\n", "        for digits in ():\n",
      "decimals (0.075 = 3/40) are not candidates of their own", ("tests/test_symbolic_formula.py",)),
    M("symbolic-transformed-fits-not-refined", "analyses/symbolic/univariate.py",
      "REFINE_R2 = 0.999\n", "REFINE_R2 = 2.0\n",
      "transformed fits (1/y, log y) are never refined on y itself", (ARB,)),
    M("symbolic-snap-judged-before-refit", "analyses/symbolic/snap.py",
      "            if m > cur_mse * (1.0 + 4.0 / n) + resolution:\n",
      "            if m > limit:\n",
      "a snap the loose limit allows is scored without refitting the others (27/20000 beats 0)",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-no-leaf-on-data", "analyses/symbolic/routes.py",
      "    if has_data and X.shape[1] == 1:\n", "    if False:\n",
      "a search down to one variable never fits the data as a one-variable set", (ARB,)),
    M("symbolic-rational-no-sparsity", "analyses/symbolic/rational.py",
      "        keep = np.delete(keep, removable[0])\n", "        return path\n",
      "the rational fit keeps every monomial of its degree pair (no sparse support)",
      ("tests/test_symbolic_rational.py",)),
    M("symbolic-rational-root-forgotten", "analyses/symbolic/rational.py",
      "        expr = sign * sympy.sqrt(expr)\n", "        expr = sign * expr\n",
      "a fit of y^2 is returned without its square root", ("tests/test_symbolic_rational.py",)),
    M("symbolic-rational-no-gate", "analyses/symbolic/routes.py",
      "RATIONAL_GATE = 1e-4\n", "RATIONAL_GATE = 1e300\n",
      "the rational route offers approximations however poor (no absolute gate)",
      ("tests/test_symbolic_rational.py",)),
    M("symbolic-rational-sin-squared", "analyses/symbolic/routes.py",
      '        tops = [1 if str(s).startswith("sin_") else MAX_DEGREE for s in local]\n',
      "        tops = [MAX_DEGREE for s in local]\n",
      "sin w enters squared next to cos w (the design holds sin^2 + cos^2 = 1)",
      ("tests/test_symbolic_rational.py",)),
    M("symbolic-rational-scale-ignored", "analyses/symbolic/rational.py",
      "    u = yn / sc\n", "    u = yn\n",
      "a scaled fit fits y, not y / scale", ("tests/test_symbolic_rational.py",)),
    M("symbolic-rational-no-reductions", "analyses/symbolic/api.py",
      "rt.rational_route(ctx, k, reductions)", "rt.rational_route(ctx, k)",
      "the structure route's reduced variables never reach the rational route",
      ("tests/test_symbolic_rational.py",)),
    M("symbolic-trust-region-warnings-leak", "analyses/symbolic/formula.py",
      '        with np.errstate(all="ignore"):  # are not the user\'s warnings\n',
      "        if True:\n",
      "scipy's floating-point warnings inside the trust-region refit reach the user",
      ("tests/test_symbolic_formula.py",)),
    M("symbolic-scaling-signed-pairs-only", "analyses/symbolic/symmetry.py",
      "              if signed[i] != signed[j]]\n", "              if False]\n",
      "a variable that changes sign never scales against one that does not (I.6.2b)",
      ("tests/test_symbolic_symmetry.py",)),
    M("symbolic-bilinear-residual-rank-two", "analyses/symbolic/structure.py",
      "    return float(torch.linalg.svdvals(double_centre(F))[1:].norm()) / cen\n",
      "    return float(torch.linalg.svdvals(double_centre(F))[2:].norm()) / cen\n",
      "the bilinear residual lets an interaction of rank two through (sin(x + y) passes)",
      (BIL,)),
    M("symbolic-bilinear-loose", "analyses/symbolic/structure.py",
      '            cands["bil"] = (bilinear_residual(F), tol / 3)\n',
      '            cands["bil"] = (bilinear_residual(F), 30 * tol)\n',
      "bilinear splits accepted far above the tolerance (a non-separable function gets one)",
      ("tests/test_symbolic_structure.py", BIL)),
    M("symbolic-bilinear-anchor-ignored", "analyses/symbolic/structure.py",
      "            return f(at(Z, C, ca)).double() - f(at(Z, C, ref[C])).double()\n",
      "            return f(at(Z, C, ca)).double() - f(at(Z, C, ca)).double()\n",
      "the bilinear split's left factor is differenced at the anchor twice (it vanishes)",
      (BIL,)),
    M("symbolic-bilinear-no-gauge", "analyses/symbolic/structure.py",
      "                if float((A_ - m * D_).norm()) <= tol * float(A_.norm()):\n",
      "                if False:\n",
      "a bilinear side that is not affine in its factor is never made additive", (BIL,)),
    M("symbolic-square-transform-drops-the-sign", "analyses/symbolic/structure.py",
      '"sq": lambda: sign * sympy.sqrt(g)}', '"sq": lambda: sympy.sqrt(g)}',
      "the squared-output transform returns the positive root for a negative function",
      (BIL,)),
    M("symbolic-monomial-exponent-sign", "analyses/symbolic/additive.py",
      "        w = w * base ** sympy.nsimplify(e)\n", "        w = w * base ** sympy.nsimplify(-e)\n",
      "the monomial's formula uses the reciprocal of the exponents it found", (BIL,)),
    M("symbolic-degenerate-no-factorial", "analyses/symbolic/degenerate.py",
      "            c = complex(d.subs(t, u0).evalf()) / math.factorial(j)\n",
      "            c = complex(d.subs(t, u0).evalf())\n",
      "the Taylor polynomial of a degenerate limit leaves out the 1/j! factors", (DEG,)),
    M("symbolic-degenerate-whole-formula-unchecked", "analyses/symbolic/degenerate.py",
      "                if v is not None and float(np.abs(v - base).max()) <= limit:\n",
      "                if v is not None:\n",
      "every function node is replaced by its linear Taylor polynomial, limit or not", (DEG,)),
    M("symbolic-two-term-no-offset", "analyses/symbolic/univariate.py",
      "            A = torch.stack([cols[names[a]], cols[names[b]], torch.ones_like(xv)], 1)\n",
      "            A = torch.stack([cols[names[a]], cols[names[b]], torch.zeros_like(xv)], 1)\n",
      "two-term leaves are fitted without their constant", (ARB,)),
    M("symbolic-two-term-free-complexity", "analyses/symbolic/univariate.py",
      "        out.append((expr, mse, cx[na] + cx[nb], f\"{na}+{nb}\"))\n",
      "        out.append((expr, mse, 1.0, f\"{na}+{nb}\"))\n",
      "a two-term leaf costs no more than the simplest primitive", (ARB,)),
    M("symbolic-transforms-free", "analyses/symbolic/univariate.py",
      "TRANSFORM_COST = {\"id\": 0.0, \"log\": 2.0, \"inv\": 2.0}\n",
      "TRANSFORM_COST = {\"id\": 0.0, \"log\": 0.0, \"inv\": 0.0}\n",
      "the log and inverse transforms add nothing to a leaf's complexity", (ARB,)),
    M("symbolic-runners-up-by-accuracy-only", "analyses/symbolic/univariate.py",
      "            by_cx = sorted(cands, key=lambda r: (r[3], r[2]))\n",
      "            by_cx = sorted(cands, key=lambda r: r[2])\n",
      "leaf runners-up are listed by accuracy alone (simple true leaves crowded out)", (ARB,)),
    M("symbolic-noise-ties-keep-choice", "analyses/symbolic/routes.py",
      "                  key=lambda r: (r[\"n_ops\"], r[\"candidate\"]))\n",
      "                  key=lambda r: r[\"candidate\"])\n",
      "without decisive evidence the network's choice stays, whatever its operations", (ARB,)),
    M("symbolic-scaling-integer-degrees", "analyses/symbolic/symmetry.py",
      "        p = POWER_STEP * round(p / POWER_STEP)\n",
      "        p = float(round(p))\n",
      "scaling degrees are snapped to integers (x^1.5 read as x^2)", (SYMM,)),
    M("symbolic-scaling-divides-the-other-input", "analyses/symbolic/symmetry.py",
      "        return fr(Zr) / (xi if s.divide == s.i else xj) ** s.power\n",
      "        return fr(Zr) / (xj if s.divide == s.i else xi) ** s.power\n",
      "the scaled function divides by the power of the input the factor does not hold", (SYMM,)),
    M("symbolic-symmetry-sum-as-diff", "analyses/symbolic/symmetry.py",
      "        sign = 1.0 if s.kind == \"diff\" else -1.0  # x_j = sign (x_i - w)\n",
      "        sign = 1.0  # x_j = sign (x_i - w)\n",
      "the reduced function puts x_j = x_i - w for a sum symmetry too (off the curve)",
      (SYMM,)),
    # -- figures and the command line ----------------------------------------------------------
    M("plot-attention-head-map-transposed", "plotting/attention/draw.py",
      "        return show(ax, row, vmax=vmax, signed=signed)\n",
      "        return show(ax, row.T, vmax=vmax, signed=signed)\n",
      "the per-head attention maps are drawn transposed", (PLOTS,)),
    M("plot-landscape-path-axes-swapped", "plotting/landscape.py",
      "ax.plot(c[:, 0], c[:, 1], \"-o\"", "ax.plot(c[:, 1], c[:, 0], \"-o\"",
      "the optimiser path is drawn with its two coordinates swapped", (PLOTS,)),
    M("cli-hessian-trace-budget-not-passed", "inspect_kit/commands/hessian.py",
      "trace_budget=args.trace_budget,", "trace_budget=100,",
      "the hessian command ignores --trace-budget", (CLI,)),
)


def _files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, check=True, capture_output=True).stdout.decode()
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def copy_repository(root: Path, dest: Path) -> None:
    """Every tracked or untracked (not ignored) file of ``root`` under ``dest``."""
    for f in _files(root):
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, target)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["INSPECT_KIT_PROGRESS"] = "0"
    env["MPLBACKEND"] = "Agg"
    return env


def run_pytest(copy: Path, tests: list[str], timeout: float) -> tuple[str, list[str], float]:
    """``("passed" | "failed" | "error", failing test ids, seconds)``."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-n", "0", "-p", "no:cacheprovider",
           "-p", "no:randomly", *tests]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "error", ["timeout"], time.perf_counter() - t0
    secs = time.perf_counter() - t0
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, flags=re.M)
    if proc.returncode == 0:
        return "passed", [], secs
    if proc.returncode == 1:
        return "failed", failed or ["(a failure without a FAILED line)"], secs
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
    return "error", tail, secs


def check_copy_is_imported(copy: Path) -> None:
    """The copy's packages, not an installed checkout, must be the ones imported."""
    code = "import analyses, inspect_kit, plotting; print(analyses.__file__, inspect_kit.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=_env(copy), check=True,
                         capture_output=True, text=True).stdout
    if any(not Path(p).resolve().is_relative_to(copy.resolve()) for p in out.split()):
        raise SystemExit(f"the copy is not what Python imports: {out.strip()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[],
                    help="run the mutations whose id contains this text (repeatable)")
    ap.add_argument("--suite", action="store_true",
                    help="run the whole default suite per mutation instead of its own tests")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--check", action="store_true",
                    help="only check that every mutation still applies (exactly one match)")
    ap.add_argument("--tests", nargs="+", default=None, metavar="TEST",
                    help="run these tests (paths or node ids) for every chosen mutation instead "
                         "of the mutation's own list, e.g. to check that one test catches it")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the check that the tests pass on the unmodified copy")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(s in m.id for s in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.id:38s} {m.file}\n    {m.what}\n    tests: {', '.join(m.tests)}")
        return 0
    if not chosen:
        print("no mutation matches", args.only)
        return 2
    if args.check:
        stale = []
        for m in chosen:
            text = (ROOT / m.file).read_text(encoding="utf-8")
            if text.count(m.old) != 1:
                stale.append(f"{m.id}: the code to mutate occurs {text.count(m.old)} times")
                continue
            try:
                compile(text.replace(m.old, m.new), m.file, "exec")
            except SyntaxError as exc:
                stale.append(f"{m.id}: the mutated file does not compile ({exc})")
        print(f"{len(chosen) - len(stale)} of {len(chosen)} mutations apply", *stale, sep="\n  ")
        return 1 if stale else 0
    results = []
    with tempfile.TemporaryDirectory(prefix="inspect-kit-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repository(ROOT, copy)
        check_copy_is_imported(copy)
        if not args.no_baseline:
            tests = ["tests", "inspect_kit", "analyses", "plotting"] if args.suite else \
                args.tests or sorted({t for m in chosen for t in m.tests})
            status, failed, secs = run_pytest(copy, tests, args.timeout)
            print(f"baseline (unmodified copy): {status} in {secs:.0f} s {' '.join(failed)}",
                  flush=True)
            if status != "passed":
                return 2
        for m in chosen:
            path = copy / m.file
            text = path.read_text(encoding="utf-8")
            count = text.count(m.old)
            if count != 1:
                results.append((m, "error", [f"the code to mutate occurs {count} times"], 0.0))
                print(f"{m.id}: ERROR (the code to mutate occurs {count} times)", flush=True)
                continue
            path.write_text(text.replace(m.old, m.new), encoding="utf-8")
            try:
                tests = ["tests", "inspect_kit", "analyses", "plotting"] if args.suite \
                    else list(args.tests or m.tests)
                status, failed, secs = run_pytest(copy, tests, args.timeout)
            finally:
                path.write_text(text, encoding="utf-8")
            verdict = {"failed": "caught", "passed": "missed"}.get(status, "error")
            results.append((m, verdict, failed, secs))
            print(f"{m.id}: {verdict.upper()} in {secs:.0f} s {' '.join(failed[:3])}", flush=True)
    print("\nsummary")
    for m, verdict, failed, secs in results:
        print(f"  {verdict:7s} {m.id:42s} {secs:5.0f} s  {failed[0] if failed else ''}")
    caught = sum(v == "caught" for _, v, _, _ in results)
    print(f"{caught} of {len(results)} mutations caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
