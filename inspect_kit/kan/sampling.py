"""Sample every KAN edge on the data the user passes: a dense curve plus the observed points.

For layer ``l`` the edge inputs ``e_l (B, n_in)`` are recorded on the given data (the training
split of a :class:`~inspect_kit.data.DataBundle` by default; never pykan's cached "last forward").
Each edge ``(l, j, i)`` is then evaluated

* on a dense grid of ``n_points`` (default 201) equally spaced values between the ``quantiles``
  (default ``(0.0, 1.0)``, i.e. the observed min and max) of ``e_l[:, i]`` -> ``x[e], y[e]``;
* on the observed inputs themselves -> ``x_obs[e] = e_l[:, i]``, ``y_obs[e] = phi(e_l[:, i])``, so a
  fitter can score held-out error on real points (:meth:`EdgeSamples.split_observed`).

Masked edges are sampled too (their curve is 0) and flagged in ``masked``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import DataError, OptionError
from ..results import Result
from . import adapter_for


def _t(v: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=float), dtype=dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeSamples(Result):
    """Sampled univariate edge functions of one model on one data set.

    Fields (E edges, P dense points, N observed points):
        family: adapter family ("zoo", "pykan", ...; "activation" / "partial_dependence" for
            :mod:`inspect_kit.kan.activations`).
        widths: node counts per layer; ``edge_shapes[l] = (n_sub_out, n_in)``.
        subnode_owner / input_owner: per layer, the node each sub-node feeds / each input column
            comes from (identity lists except pykan mult nodes and FastKAN LayerNorm columns).
        index: ``(layer, out j, in i)`` of every edge, layer by layer in row-major order.
        x, y: ``(E, P)`` dense grid and edge values; masked: ``(E,)`` bool.
        x_obs, y_obs: ``(E, N)`` observed inputs of each edge and the edge's values there.
        observed: per layer the ``(N, n_in)`` edge inputs.
        grid_range: ``(E, 2)`` the edge's spline grid interval (±inf where none).
        quantiles, n_samples, input_note, note, labels (optional per-edge names).
    """

    result_type: ClassVar[str] = "EdgeSamples"
    item_keys: ClassVar[tuple[str, ...]] = ("layer", "out", "in")
    family: str
    widths: list[int]
    edge_shapes: list[tuple[int, int]]
    subnode_owner: list[list[int]]
    input_owner: list[list[int]]
    index: list[tuple[int, int, int]]
    x: torch.Tensor
    y: torch.Tensor
    masked: torch.Tensor
    x_obs: torch.Tensor
    y_obs: torch.Tensor
    observed: list[torch.Tensor]
    grid_range: torch.Tensor
    quantiles: tuple[float, float] = (0.0, 1.0)
    n_samples: int = 0
    input_note: str | None = None
    note: str = ""
    labels: list[str] | None = None

    @property
    def n_edges(self) -> int:
        return len(self.index)

    def row(self, l: int, j: int, i: int) -> int:
        """Row of edge ``(l, j, i)`` in ``x``/``y``."""
        try:
            return self._rows()[(int(l), int(j), int(i))]
        except KeyError:
            raise OptionError(f"no edge (layer={l}, out={j}, in={i}); edge_shapes are {self.edge_shapes}") \
                from None

    def _rows(self) -> dict[tuple[int, int, int], int]:
        return {tuple(ix): r for r, ix in enumerate(self.index)}

    def curve(self, l: int, j: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``(x, y)`` of one edge."""
        r = self.row(l, j, i)
        return self.x[r], self.y[r]

    def held_out(self, fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded split of the N observed points: ``(fit_idx, held_idx)`` (shared by all edges)."""
        if not 0.0 < fraction < 1.0:
            raise OptionError(f"fraction must be in (0, 1), got {fraction}")
        n = self.x_obs.shape[1]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        k = max(1, int(round(n * fraction)))
        return perm[k:].sort().values, perm[:k].sort().values

    def split_observed(self, fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``(x_fit, y_fit, x_held, y_held)``, each ``(E, n)``, from :meth:`held_out`."""
        fit, held = self.held_out(fraction, seed)
        return self.x_obs[:, fit], self.y_obs[:, fit], self.x_obs[:, held], self.y_obs[:, held]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeSamples:
        d = dict(data)
        for k in ("x", "y", "x_obs", "y_obs", "grid_range"):
            d[k] = _t(d[k])
        d["masked"] = torch.as_tensor(d["masked"], dtype=torch.bool)
        d["observed"] = [_t(o) for o in d["observed"]]
        d["index"] = [tuple(v) for v in d["index"]]
        d["edge_shapes"] = [tuple(v) for v in d["edge_shapes"]]
        d["quantiles"] = tuple(d["quantiles"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def rows(self) -> list[dict[str, Any]]:
        return [{"layer": l, "out": j, "in": i, "masked": bool(self.masked[r]),
                 "x_min": float(self.x[r, 0]), "x_max": float(self.x[r, -1]),
                 "y_min": float(self.y[r].min()), "y_max": float(self.y[r].max())}
                for r, (l, j, i) in enumerate(self.index)]


def data_tensors(data: Any, *, split: str = "train", samples: int | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(X, y)`` of ``data`` (any form the model view accepts), optionally a seeded draw of
    ``samples`` samples (the kit's one sample-count rule, :func:`inspect_kit.view.to_batches`)."""
    from ..view.batches import check_finite, concat, to_batches

    if samples is not None and int(samples) < 2:
        raise OptionError(f"samples must be >= 2, got {samples}")
    whole = concat(to_batches(data, split=split, samples=samples, seed=seed))
    check_finite([whole])
    return whole.x, whole.target


def input_matrix(data: Any, *, split: str = "train", samples: int | None = None,
                 seed: int = 0) -> torch.Tensor:
    """All inputs of ``data`` as one tensor (see :func:`data_tensors`)."""
    return data_tensors(data, split=split, samples=samples, seed=seed)[0]


def sample_edges(
    model: Any,
    data: Any,
    *,
    n_points: int = 201,
    quantiles: tuple[float, float] = (0.0, 1.0),
    samples: int | None = None,
    split: str = "train",
    seed: int = 0,
) -> EdgeSamples:
    """Sample every edge of a KAN (zoo, pykan, efficient-kan, FastKAN) on ``data``.

    Args:
        model: a KAN module or a :class:`~inspect_kit.kan.protocol.KANAdapter`.
        data: any :mod:`inspect_kit.data` form; a DataBundle or spec gives its ``split`` split.
        n_points: dense points per edge (P).
        quantiles: ``(q_lo, q_hi)`` of each edge's observed inputs bounding the dense grid.
        samples: subsample the data to at most this many points (seeded by ``seed``).
    """
    q_lo, q_hi = (float(q) for q in quantiles)
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise OptionError(f"quantiles must satisfy 0 <= q_lo < q_hi <= 1, got {quantiles}")
    if int(n_points) < 2:
        raise OptionError(f"n_points must be >= 2, got {n_points}")
    adapter = adapter_for(model)
    X = input_matrix(data, split=split, samples=samples, seed=seed)
    if len(X) < 1:
        raise DataError("the data is empty")
    with torch.no_grad():
        observed = [o.detach() for o in adapter.layer_inputs(X)]
        xs, ys, xo, yo, masked, rng, index = [], [], [], [], [], [], []
        t = torch.linspace(0.0, 1.0, int(n_points), dtype=adapter.dtype)
        for l, obs in enumerate(observed):
            n_out, n_in = adapter.edge_shape(l)
            qs = torch.quantile(obs.double(), torch.tensor([q_lo, q_hi], dtype=torch.float64), dim=0)
            lo, hi = qs[0].to(obs.dtype), qs[1].to(obs.dtype)
            grid = lo + (hi - lo) * t[:, None]  # (P, n_in)
            y_dense = adapter.edge_values(l, grid)  # (P, out, in)
            y_obs = adapter.edge_values(l, obs)  # (N, out, in)
            m = adapter.mask(l) == 0
            gr = adapter.grid_range(l)
            for j in range(n_out):
                for i in range(n_in):
                    index.append((l, j, i))
                    xs.append(grid[:, i])
                    ys.append(y_dense[:, j, i])
                    xo.append(obs[:, i])
                    yo.append(y_obs[:, j, i])
                    masked.append(bool(m[j, i]))
                    rng.append(gr[i])
    n_const = sum(int((x[-1] - x[0]) == 0) for x in xs)
    note = (f"edges sampled on {len(X)} points of the {split} split; dense grid of {n_points} points over "
            f"the [{q_lo}, {q_hi}] quantiles of each edge's observed inputs")
    if n_const:
        note += f"; {n_const} edges saw a constant input (zero-width grid)"
    return EdgeSamples(
        family=adapter.family, widths=list(adapter.widths),
        edge_shapes=[adapter.edge_shape(l) for l in range(adapter.n_layers)],
        subnode_owner=[adapter.subnode_owner(l) for l in range(adapter.n_layers)],
        input_owner=[adapter.input_owner(l) for l in range(adapter.n_layers)],
        index=index, x=torch.stack(xs), y=torch.stack(ys), masked=torch.tensor(masked, dtype=torch.bool),
        x_obs=torch.stack(xo), y_obs=torch.stack(yo), observed=observed, grid_range=torch.stack(rng),
        quantiles=(q_lo, q_hi), n_samples=len(X), input_note=adapter.input_note, note=note,
    )
