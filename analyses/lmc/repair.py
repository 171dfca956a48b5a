"""REPAIR: undo the variance collapse of interpolated networks (Jordan, Sedghi, Saukh, Entezari,
Neyshabur 2023, "REPAIR: REnormalizing Permuted Activations for Interpolation Repair", ICLR).

Averaging two networks shrinks the spread of hidden pre-activations ("variance collapse"). For a
channel ``j`` of a repaired module, with endpoint statistics ``(mu_A, sigma_A)`` and
``(mu_B, sigma_B)`` of its output on the data, REPAIR rescales the interpolated network's
output ``z_j`` (measured mean ``mu_j``, std ``sigma_j``) to the interpolated targets:

    z'_j = s_j (z_j - mu_j) + mu_t,   s_j = sigma_t / sigma_j,
    mu_t = (1 - t) mu_A + t mu_B,   sigma_t = (1 - t) sigma_A + t sigma_B,

folded into the producing module:

* ``nn.Linear`` / ``ConvNd`` with a bias: ``W[j] *= s_j``, ``b_j = s_j (b_j - mu_j) + mu_t``
  (for a KAN layer ``scale_base[j, :]`` and ``scale_sp[j, :]`` scale and ``bias_j`` shifts);
* BatchNorm (the networks of Jordan et al.'s Sec. 4.3 and Ainsworth et al.'s ResNets): first
  **RESET** the running statistics to the data's (``running_mean = E[x_j]``, ``running_var`` the
  unbiased variance), which makes the output mean ``beta_j`` and the std
  ``|gamma_j| sqrt(v_j / (v_j^u + eps))`` (``v`` biased, ``v^u`` unbiased input variance); then
  REPAIR the output, i.e. the output of the fused conv+BN, with ``gamma_j *= s_j`` and
  ``beta_j = mu_t``. RESET alone (``correct=False``) is Ainsworth et al.'s (2023, Sec. 5.2)
  reset of BatchNorm statistics.

Every module is fixed in call order, measured after the earlier ones were fixed (one forward on
one batch, see :mod:`analyses.lmc.renorm`); a module called more than once is left alone. Every
BatchNorm with running statistics is RESET at every point, including the ones without an affine
map (RESET only). Statistics come from a model view of the training data
(:class:`inspect_kit.view.ModelView`, every batch, in the view's dtype and model mode); RESET
assumes the view's ``model_mode="eval"`` (the default), in which BatchNorm uses its running
statistics.

The *variance-collapse ratio* of a layer at ``t`` is ``mean_j sigma_j(t) / sigma_t``: 1 means no
collapse; the reference study measured 0.71/0.39 (layers 1/2) naive and 0.92/0.85 after weight
matching for two digits MLPs at t = 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .permutation import PermutationSpec
from .renorm import Moments, Step, call_order, channel_dim, output_moments, renormalize

EPS = 1e-8
Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None


def repair_targets(model: nn.Module, spec: PermutationSpec) -> list[str]:
    """Modules whose output channels REPAIR renormalises, in model order: every BatchNorm with
    an affine map and running statistics, and every ``nn.Linear``/``ConvNd`` with a bias or KAN
    layer (``scale_base``/``scale_sp``/``bias``) whose output units are a hidden permutation
    group produced by that module alone (the only module whose bias moves with the group)."""
    producers: dict[int, set[str]] = {}  # modules adding a bias to the group's units
    for g in spec.groups:
        for name, axis in g.members:
            if axis == 0 and name.endswith(".bias"):
                producers.setdefault(g.index, set()).add(name.rsplit(".", 1)[0])
    atomic = {ax.groups[0] for ax in spec.axes if len(ax.groups) == 1}
    out = []
    for name, m in model.named_modules():
        if _is_bn(m):
            if m.affine:
                out.append(name)
            continue
        is_linear = isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and m.bias is not None
        is_kan = all(isinstance(getattr(m, a, None), torch.Tensor)
                     for a in ("scale_base", "scale_sp", "bias"))
        if not (is_linear or is_kan):
            continue
        key = f"{name}.bias"
        gids = [g.index for g in spec.groups if (key, 0) in g.members]
        if gids and gids[0] in atomic and producers.get(gids[0]) == {name}:
            out.append(name)
    return out


@torch.no_grad()
def layer_stats(view: Any, state: Mapping[str, torch.Tensor], targets: list[str]) -> Stats:
    """Per-channel mean and (biased) std of each target's output (model at ``state``)."""
    if not targets:
        return {}
    acc = output_moments(view, state, targets)
    return {n: (acc[n].mean, acc[n].std()) for n in targets}


def _goal(ends: tuple[Stats, Stats], name: str, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    sa, sb = ends
    return (1 - t) * sa[name][0] + t * sb[name][0], (1 - t) * sa[name][1] + t * sb[name][1]


def _shape(s: torch.Tensor, dim: int, ndim: int) -> torch.Tensor:
    shape = [1] * ndim
    shape[dim] = -1
    return s.reshape(shape)


def _bn_step(p: dict[str, torch.Tensor], name: str, m: nn.Module,
             goal: tuple[torch.Tensor, torch.Tensor] | None) -> Step:
    """RESET the BatchNorm's running statistics, then (with a goal) REPAIR its output."""
    keys = {k: f"{name}.{k}" for k in ("running_mean", "running_var", "weight", "bias")}

    def fix(mom: Moments) -> Any:
        dtype = p[keys["running_mean"]].dtype
        var_u = mom.var(unbiased=True)
        p[keys["running_mean"]] = mom.mean.to(dtype)
        p[keys["running_var"]] = var_u.to(dtype)
        if goal is not None and m.affine:
            w = p[keys["weight"]].double()
            sd = w.abs() * (mom.var() / (var_u + m.eps)).sqrt()  # output std after RESET
            s = goal[1] / (sd + EPS)
            p[keys["weight"]] = (s * w).to(dtype)
            # s (b - mean) + mu_t, where the output mean after RESET is b itself
            p[keys["bias"]] = goal[0].to(dtype)
        w = p.get(keys["weight"]) if m.affine else None
        b = p.get(keys["bias"]) if m.affine else None
        rm, rv = p[keys["running_mean"]], p[keys["running_var"]]
        return lambda x, _out: F.batch_norm(x, rm, rv, w, b, False, 0.0, m.eps)

    return Step(name, "input", 1, fix)


def _affine_step(p: dict[str, torch.Tensor], name: str, m: nn.Module,
                 goal: tuple[torch.Tensor, torch.Tensor]) -> Step:
    """REPAIR a Linear/Conv/KAN output by folding the correction into its weights and bias."""
    dim = channel_dim(m)

    def fix(mom: Moments) -> Any:
        mu, s = mom.mean, goal[1] / (mom.std() + EPS)
        bias = p[f"{name}.bias"]
        p[f"{name}.bias"] = (s * (bias.double() - mu) + goal[0]).to(bias.dtype)
        for w in ("weight", "scale_base", "scale_sp"):
            key = f"{name}.{w}"
            if key in p:
                p[key] = p[key] * _shape(s, 0, p[key].dim()).to(p[key].dtype)

        def apply(_x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
            n = out.dim()
            return ((out.double() - _shape(mu, dim, n)) * _shape(s, dim, n)
                    + _shape(goal[0], dim, n)).to(out.dtype)
        return apply

    return Step(name, "output", dim, fix)


def lerp(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], t: float,
         keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """``(1 - t) A + t B`` on the floating tensors named in ``keys``; A's values elsewhere."""
    out = dict(state_a)
    for k in keys:
        if state_a[k].is_floating_point():
            out[k] = (1 - t) * state_a[k] + t * state_b[k].to(state_a[k])
    return out


def _steps(view: Any, p: dict[str, torch.Tensor], targets: list[str], t: float,
           ends: tuple[Stats, Stats] | None) -> list[Step]:
    mods = dict(view.model.named_modules())
    bns = [n for n, m in mods.items() if _is_bn(m)]
    steps = []
    for n in call_order(view, list(dict.fromkeys(bns + targets))):
        goal = _goal(ends, n, t) if ends is not None and n in targets else None
        if n in bns:
            steps.append(_bn_step(p, n, mods[n], goal))
        elif goal is not None:
            steps.append(_affine_step(p, n, mods[n], goal))
    return steps


@torch.no_grad()
def reset_batchnorm(view: Any, state: dict[str, torch.Tensor]) -> None:
    """RESET: every BatchNorm's running mean/var := its input's on the data (in ``state``, in
    call order, each after the earlier ones were reset)."""
    renormalize(view, state, _steps(view, state, [], 0.0, None))


@torch.no_grad()
def repaired_point(view: Any, state_b: Mapping[str, torch.Tensor], keys: Sequence[str], t: float,
                   targets: list[str], ends: tuple[Stats, Stats], *, correct: bool = True
                   ) -> dict[str, torch.Tensor]:
    """The REPAIRed interpolated state at ``t`` between the view's state (A) and ``state_b``
    (``ends``: endpoint stats of A and B; ``keys``: the tensors that move). ``correct=False``
    only RESETs the BatchNorm statistics."""
    p = lerp(view.state, state_b, t, keys)
    renormalize(view, p, _steps(view, p, targets, t, ends if correct else None))
    return p


@torch.no_grad()
def variance_ratios(view: Any, state_b: Mapping[str, torch.Tensor], keys: Sequence[str],
                    targets: list[str], ends: tuple[Stats, Stats], t: float = 0.5,
                    state: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
    """``mean_j sigma_j(t) / ((1 - t) sigma_A,j + t sigma_B,j)`` per target layer."""
    p = dict(state) if state is not None else lerp(view.state, state_b, t, keys)
    stats = layer_stats(view, p, targets)
    sa, sb = ends
    out: dict[str, Any] = {}
    for n in targets:
        sd_t = (1 - t) * sa[n][1] + t * sb[n][1]
        keep = sd_t > EPS
        out[n] = float((stats[n][1][keep] / sd_t[keep]).mean())
    return out
