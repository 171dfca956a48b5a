"""Edge and node attribution of a KAN, and spline-based feature importances; pruning masks.

**Backward attribution** (pykan ``MultKAN.attribute``, Liu et al. 2024 "KAN 2.0", arXiv 2408.10205),
computed on the data passed here (never a cached forward). Per layer ``l`` on the N samples:
``A[l][j, i] = std_n phi_l[j, i]`` (edge scale, unbiased std) and ``S[l][j] = std_n sum_i phi_l[j, i]``
(sub-node scale). Starting from ``score = I`` (one row per network output ``k``) at the last layer,

    subnode[k, j]  = node[k, owner(j)]                        (a mult node passes its score to each sub-node)
    edge[k, j, i]  = A[l][j, i] * subnode[k, j] / (S[l][j] + 1e-4)
    node[k, i]     = sum_j edge[k, j, i]

and the reported scores are means over the outputs ``k``; ``feature_scores = node_scores[0]``.
For FastKAN with a LayerNorm an input node owns two edge-input columns (u and h) and its node
score sums both.

**Spline-based feature importances** (Akazan & Mbingui 2025, "Splines-Based Feature Importance in
Kolmogorov-Arnold Networks", arXiv 2509.23366), per input feature ``i`` from the first layer's
effective spline coefficients ``w[j, i, m]`` (scale and mask folded in; RBF weights for FastKAN):

    KAN-L1: sum_{j,m} |w[j, i, m]|        KAN-L2: sqrt(sum_{j,m} w[j, i, m]^2)
    KAN-SI: mean_n mean_k |d f_k / d x_i (x_n)|      (sensitivity integral, autograd on the data)
    KAN-KO: loss(f with every first-layer edge of input i set to 0) - loss(f)   (knock-out; needs y)

Symbolic (pykan ``fix_symbolic``) edges have no spline coefficients and count 0 in L1/L2.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from ..data import resolve_loss
from ..errors import OptionError
from ..results import WHOLE, Result, measure
from . import KANAdapter, adapter_for
from .sampling import data_tensors

EPS = 1e-4  # pykan's constant in edge = A * subnode / (S + 1e-4)


def _arrays(v: Any) -> list[np.ndarray]:
    return [np.asarray(a, dtype=float) for a in v]


@dataclasses.dataclass(frozen=True, eq=False)
class AttributionResult(Result):
    """pykan-compatible backward scores plus spline-based feature importances.

    ``edge_scores[l]`` ``(n_sub_out, n_in)``; ``node_scores[l]`` ``(widths[l],)`` for l = 0..L
    (the last is all ones); ``subnode_scores[l]`` ``(n_sub_out,)``; ``edge_actscale`` and
    ``subnode_actscale`` the std scales they came from; importances are per input feature.
    """

    result_type = "AttributionResult"
    item_keys: ClassVar[tuple[str, ...]] = ("layer", "out", "in")
    family: str
    widths: list[int]
    subnode_owner: list[list[int]]
    input_owner: list[list[int]]
    edge_scores: list[np.ndarray]
    node_scores: list[np.ndarray]
    subnode_scores: list[np.ndarray]
    edge_actscale: list[np.ndarray]
    subnode_actscale: list[np.ndarray]
    feature_scores: np.ndarray
    spline_l1: np.ndarray
    spline_l2: np.ndarray
    sensitivity: np.ndarray
    knockout: np.ndarray | None = None
    n_samples: int = 0
    note: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributionResult:
        d = dict(data)
        for k in ("edge_scores", "node_scores", "subnode_scores", "edge_actscale", "subnode_actscale"):
            d[k] = _arrays(d[k])
        for k in ("feature_scores", "spline_l1", "spline_l2", "sensitivity", "knockout"):
            if d.get(k) is not None:
                d[k] = np.asarray(d[k], dtype=float)
        return cls(**d)

    def rows(self) -> list[dict[str, Any]]:
        return [{"layer": l, "out": j, "in": i, "score": float(s[j, i])}
                for l, s in enumerate(self.edge_scores)
                for j in range(s.shape[0]) for i in range(s.shape[1])]


@dataclasses.dataclass(frozen=True, eq=False)
class PruneMasks(Result):
    """What pruning at a threshold keeps: ``edge_keep[l]`` (n_sub_out, n_in), ``node_keep[l]`` (widths[l]).

    An edge is dropped (becomes the zero function) when its score is not above ``edge_threshold``
    or it touches a dropped node; a hidden node is dropped when its score is not above
    ``node_threshold`` (pykan's ``prune_edge`` / ``prune_node`` rules; inputs and outputs are kept).
    """

    result_type = "PruneMasks"

    def headline(self) -> list[dict[str, Any]]:
        """Edges and nodes kept."""
        return [measure(WHOLE, "edges_kept", sum(int(a.sum()) for a in self.edge_keep)),
                measure(WHOLE, "edges", sum(int(a.size) for a in self.edge_keep)),
                measure(WHOLE, "nodes_kept", sum(int(a.sum()) for a in self.node_keep))]
    edge_threshold: float
    node_threshold: float
    edge_keep: list[np.ndarray]
    node_keep: list[np.ndarray]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruneMasks:
        d = dict(data)
        d["edge_keep"] = [np.asarray(a, dtype=bool) for a in d["edge_keep"]]
        d["node_keep"] = [np.asarray(a, dtype=bool) for a in d["node_keep"]]
        return cls(**d)


def _owner_matrix(owner: list[int], n: int, dtype: torch.dtype) -> torch.Tensor:
    """``(len(owner), n)`` 0/1 matrix: row c has a 1 in column owner[c]."""
    m = torch.zeros(len(owner), n, dtype=dtype)
    m[torch.arange(len(owner)), torch.tensor(owner, dtype=torch.long)] = 1.0
    return m


def _backward(adapter: KANAdapter, A: list[torch.Tensor], S: list[torch.Tensor]) -> tuple[list, list, list]:
    L = adapter.n_layers
    node = torch.eye(adapter.widths[L], dtype=torch.float64)
    nodes, edges, subs = [node], [], []
    for l in range(L - 1, -1, -1):
        sub = node @ _owner_matrix(adapter.subnode_owner(l), adapter.widths[l + 1], node.dtype).T
        edge = A[l][None] * sub[:, :, None] / (S[l][None, :, None] + EPS)
        col = edge.sum(1)  # (k, n_in)
        node = col @ _owner_matrix(adapter.input_owner(l), adapter.widths[l], node.dtype)
        subs.append(sub)
        edges.append(edge)
        nodes.append(node)
    return nodes[::-1], edges[::-1], subs[::-1]


def _forward_knocked(adapter: KANAdapter, x: torch.Tensor, feature: int | None) -> torch.Tensor:
    h = adapter.prepare_input(x)
    for l in range(adapter.n_layers):
        phi = adapter.edge_values(l, adapter.input_map(l, h))
        if l == 0 and feature is not None:
            cols = [c for c, o in enumerate(adapter.input_owner(0)) if o == feature]
            phi = phi.clone()
            phi[:, :, cols] = 0.0
        h = adapter.node_map(l, phi.sum(-1))
    return h


def attribute(
    model: Any,
    data: Any,
    *,
    split: str = "train",
    samples: int | None = None,
    seed: int = 0,
    loss: Any = None,
    knockout: bool = True,
) -> AttributionResult:
    """Backward edge/node scores and spline feature importances of a KAN on ``data``.

    Args:
        model: a KAN (any family of :func:`inspect_kit.kan.adapter_for`) or an adapter.
        data: any :mod:`inspect_kit.data` form (the training split of a bundle by default).
        samples: subsample the data (seeded) before scoring.
        loss: loss for KAN-KO (default by task: CE for integer targets, MSE otherwise).
        knockout: compute KAN-KO (needs targets; skipped when the data has none usable).
    """
    adapter = adapter_for(model)
    X, y = data_tensors(data, split=split, samples=samples, seed=seed)
    if len(X) < 2:
        raise OptionError("attribution needs at least 2 samples (it uses standard deviations)")
    A, S = [], []
    with torch.no_grad():
        for l, e in enumerate(adapter.layer_inputs(X)):
            phi = adapter.edge_values(l, e)
            A.append(phi.std(0).double())
            S.append(phi.sum(-1).std(0).double())
    nodes, edges, subs = _backward(adapter, A, S)

    coef = adapter.spline_coefficients(0)
    own = _owner_matrix(adapter.input_owner(0), adapter.widths[0], torch.float64)
    if coef is None:
        l1 = l2 = torch.full((adapter.widths[0],), float("nan"), dtype=torch.float64)
    else:
        c = coef.double()
        l1 = c.abs().sum((0, 2)) @ own
        l2 = torch.sqrt((c**2).sum((0, 2)) @ own)

    xg = adapter.prepare_input(X).detach().clone().requires_grad_(True)
    out = adapter.forward_from_edges(xg)
    grads = [torch.autograd.grad(out[:, k].sum(), xg, retain_graph=k < out.shape[1] - 1)[0].abs()
             for k in range(out.shape[1])]
    sens = torch.stack(grads).mean((0, 1)).double()

    ko = None
    if knockout and len(y) == len(X):
        with torch.no_grad():
            fn = resolve_loss(loss, y)
            base = float(fn(_forward_knocked(adapter, X, None), y))
            ko = np.array([float(fn(_forward_knocked(adapter, X, i), y)) - base
                           for i in range(adapter.widths[0])])
    np_ = lambda ts: [t.mean(0).numpy() for t in ts]  # noqa: E731
    return AttributionResult(
        family=adapter.family, widths=list(adapter.widths),
        subnode_owner=[adapter.subnode_owner(l) for l in range(adapter.n_layers)],
        input_owner=[adapter.input_owner(l) for l in range(adapter.n_layers)],
        edge_scores=np_(edges), node_scores=np_(nodes), subnode_scores=np_(subs),
        edge_actscale=[a.numpy() for a in A], subnode_actscale=[s.numpy() for s in S],
        feature_scores=nodes[0].mean(0).numpy(), spline_l1=l1.numpy(), spline_l2=l2.numpy(),
        sensitivity=sens.numpy(), knockout=ko, n_samples=len(X),
        note=f"pykan backward attribution on {len(X)} samples of the {split} split",
    )


def edge_scores(model: Any, data: Any, **kwargs: Any) -> list[torch.Tensor]:
    """pykan-style backward edge scores per layer, ``(n_sub_out, n_in)`` tensors."""
    res = attribute(model, data, knockout=False, **kwargs)
    return [torch.as_tensor(s) for s in res.edge_scores]


def node_scores(model: Any, data: Any, **kwargs: Any) -> list[torch.Tensor]:
    """pykan-style node scores per node layer ``0..L`` (``node_scores[0]`` = feature scores)."""
    res = attribute(model, data, knockout=False, **kwargs)
    return [torch.as_tensor(s) for s in res.node_scores]


def prune_mask(scores: AttributionResult, threshold: float = 3e-2, *,
               node_threshold: float = 1e-2) -> PruneMasks:
    """Keep masks from scores: edges with score > ``threshold`` and hidden nodes with score >
    ``node_threshold`` (pykan's ``prune_edge``/``prune_node`` rules and defaults 3e-2, 1e-2).
    An edge below the threshold becomes the zero function; a dropped node drops all its edges."""
    L = len(scores.edge_scores)
    node_keep = [np.ones(len(scores.node_scores[0]), dtype=bool)]
    for l in range(1, L):
        node_keep.append(np.asarray(scores.node_scores[l]) > node_threshold)
    node_keep.append(np.ones(len(scores.node_scores[L]), dtype=bool))
    edge_keep = []
    for l, s in enumerate(scores.edge_scores):
        k = np.asarray(s) > threshold
        k &= node_keep[l][np.asarray(scores.input_owner[l])][None, :]
        k &= node_keep[l + 1][np.asarray(scores.subnode_owner[l])][:, None]
        edge_keep.append(k)
    return PruneMasks(edge_threshold=float(threshold), node_threshold=float(node_threshold),
                      edge_keep=edge_keep, node_keep=node_keep)
