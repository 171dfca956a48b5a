"""Layer matrices: every parameter with two or more dimensions, as the 2-D matrices an ESD needs.

One :class:`LayerMatrix` per analysed matrix, and one per parameter that cannot be analysed (with
a ``skip_reason``): nothing with ``ndim >= 2`` is dropped silently. How a tensor becomes matrices:

* ``nn.Linear`` (and anything 2-D): the matrix as stored, ``(out, in)``.
* ``nn.Conv1d/2d/3d`` weight ``(out, in, *k)``: one ``(out, in)`` slice per kernel tap, the slices'
  eigenvalues pooled into one ESD (WeightWatcher's ``pool=True``); ``conv="flat"`` or ``"both"``
  also gives the reshaped ``(out, in * prod(k))`` matrix as ``name[flat]``.
* ``MultiheadAttention.in_proj_weight`` ``(3E, E)``: split into ``name[q]``, ``name[k]``,
  ``name[v]``.
* RNN/LSTM/GRU ``weight_ih_l*`` / ``weight_hh_l*``: split into gate blocks (LSTM ``i, f, g, o``;
  GRU ``r, z, n``).
* ``nn.Embedding``: the table as stored; when its smaller side exceeds ``max_evals`` only the top
  ``partial_k`` eigenvalues are computed (partial Lanczos eigensolver) and the row is marked
  ``partial``.
* KAN spline coefficients ``(out, in, G + k)`` (zoo ``coef``, efficient-kan ``spline_weight``,
  pykan ``coef`` stored ``(in, out, G + k)``): per-basis ``(out, in)`` slices pooled as
  ``name[basis]`` *and* flattened ``(out, in * (G + k))`` as ``name[flat]``; KAN ``scale_base``,
  ``scale_sp``, ``base_weight``, ``spline_scaler`` are plain matrices.
* Any other tensor: leading singleton axes dropped, then ``(shape[0], prod(rest))``.

Identical tensors (tied or equal copies) are found and flagged with ``duplicate_of`` so their
spectrum is computed once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from inspect_kit.errors import InspectKitError

LSTM_GATES = ("i", "f", "g", "o")
GRU_GATES = ("r", "z", "n")


@dataclasses.dataclass
class LayerMatrix:
    """One ESD to compute: ``mats`` are the 2-D slices whose eigenvalues are pooled."""

    name: str
    param: str
    kind: str
    shape: tuple[int, ...]
    mats: list[torch.Tensor] = dataclasses.field(default_factory=list, repr=False)
    skip_reason: str | None = None
    ww_type: str | None = None  # layer type WeightWatcher 0.7.7 gives the owning module (or None)
    duplicate_of: str | None = None
    partial: bool = False

    @property
    def n_rows(self) -> int:
        return max(self.mats[0].shape) if self.mats else 0

    @property
    def n_cols(self) -> int:
        return min(self.mats[0].shape) if self.mats else 0

    @property
    def n_evals(self) -> int:
        return sum(min(m.shape) for m in self.mats)


# ----------------------------------------------------------------------------------------------
# loading


# ----------------------------------------------------------------------------------------------
# classification of one tensor


def _ww_type(module: nn.Module | None) -> str | None:
    """WeightWatcher 0.7.7's layer type for a module (by isinstance or class-name substring)."""
    if module is None:
        return None
    typestr = str(type(module)).lower()
    if isinstance(module, nn.Linear) or "linear" in typestr:
        return "dense"
    if isinstance(module, nn.Conv1d) or "conv1d" in typestr:
        return "conv1d"
    if isinstance(module, nn.Conv2d) or "conv2d" in typestr:
        return "conv2d"
    if isinstance(module, nn.Embedding) or "embedding" in typestr:
        return "embedding"
    return None


def _squeeze_leading(t: torch.Tensor) -> torch.Tensor:
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2 and t.shape[0] == 1 and t.shape[1] == 1:
        return t
    return t


def _split_rows(t: torch.Tensor, labels: tuple[str, ...]) -> list[tuple[str, torch.Tensor]]:
    blocks = torch.chunk(t, len(labels), dim=0)
    return list(zip(labels, blocks))


def _gate_labels(gates: int) -> tuple[str, ...]:
    if gates == 4:
        return LSTM_GATES
    if gates == 3:
        return GRU_GATES
    return tuple(f"g{i}" for i in range(gates))


def classify(
    name: str,
    t: torch.Tensor,
    module: nn.Module | None = None,
    *,
    conv: str = "pooled",
    hidden: int | None = None,
) -> list[LayerMatrix]:
    """The :class:`LayerMatrix` rows for parameter ``name`` (``t.ndim >= 2``).

    ``module`` is the owning module when known (a model was given); otherwise the kind is
    inferred from the name and the shape. ``hidden`` is the RNN hidden size (for gate splits).
    """
    leaf = name.rsplit(".", 1)[-1]
    shape = tuple(int(s) for s in t.shape)
    ww = _ww_type(module) if leaf == "weight" else None
    t = t.detach()
    mtype = type(module).__name__ if module is not None else ""
    mmod = type(module).__module__ if module is not None else ""

    def row(suffix: str, kind: str, mats: list[torch.Tensor], **kw: Any) -> LayerMatrix:
        return LayerMatrix(name=name + suffix, param=name, kind=kind, shape=shape, mats=mats,
                           ww_type=ww, **kw)

    def skip(kind: str, reason: str) -> list[LayerMatrix]:
        return [LayerMatrix(name=name, param=name, kind=kind, shape=shape, skip_reason=reason,
                            ww_type=ww)]

    if not t.is_floating_point():
        return skip("tensor", f"dtype {t.dtype} is not floating point")
    if t.is_complex():
        return skip("tensor", "complex tensor: ESD metrics are defined for real matrices")
    t = t.to("cpu")

    # KAN knots and masks are parameters in pykan but not weights.
    is_pykan = mmod.startswith("kan.")
    if leaf == "grid" and (is_pykan or "kan" in mtype.lower() or module is None):
        return skip("kan_grid", "KAN knot grid (spline support points), not a weight matrix")
    if leaf == "mask" and ("kan" in mtype.lower() or is_pykan):
        return skip("kan_mask", "KAN edge mask (0/1 pruning switches), not a weight matrix")

    # attention in_proj: (3E, E) -> q, k, v
    if leaf == "in_proj_weight" and t.dim() == 2 and t.shape[0] % 3 == 0:
        return [row(f"[{lab}]", f"attn_{lab}", [blk]) for lab, blk in _split_rows(t, ("q", "k", "v"))]
    if leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight") and t.dim() == 2:
        return [row("", f"attn_{leaf[0]}", [t])]

    # recurrent gate blocks
    if (leaf.startswith("weight_ih_l") or leaf.startswith("weight_hh_l")) and t.dim() == 2:
        h = hidden
        if h is None and module is not None:
            h = getattr(module, "hidden_size", None)
        if h is None and leaf.startswith("weight_hh_l"):
            h = t.shape[1]
        if h and t.shape[0] % h == 0 and t.shape[0] // h > 1:
            labels = _gate_labels(t.shape[0] // h)
            return [row(f"[{lab}]", "rnn_gate", [blk]) for lab, blk in _split_rows(t, labels)]
        return [row("", "rnn", [t])]

    # KAN spline coefficients
    kan_coef = t.dim() == 3 and (
        leaf == "spline_weight"
        or (leaf == "coef" and (module is None or "kan" in mtype.lower() or is_pykan))
    )
    if kan_coef:
        c = t.permute(1, 0, 2) if is_pykan else t  # pykan stores (in, out, G+k)
        out, inn, nb = c.shape
        slices = [c[:, :, m] for m in range(nb)]
        flat = c.reshape(out, inn * nb)
        return [row("[basis]", "kan_coef_basis", slices), row("[flat]", "kan_coef_flat", [flat])]
    if t.dim() == 2 and leaf in ("scale_base", "scale_sp", "base_weight", "spline_scaler"):
        kind = "kan_" + leaf
        return [row("", kind, [t.T if is_pykan else t])]

    # convolutions (module known, or a 3-5 D ".weight" from a state dict)
    is_conv = isinstance(module, (nn.modules.conv._ConvNd,)) or (
        module is None and leaf == "weight" and 3 <= t.dim() <= 5
    )
    if is_conv and t.dim() >= 3:
        d = t.dim() - 2
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
        w = t.transpose(0, 1) if transposed else t  # -> (out, in, *k)
        out, inn = w.shape[:2]
        taps = w.reshape(out, inn, -1)
        rows: list[LayerMatrix] = []
        if conv in ("pooled", "both"):
            rows.append(row("", f"conv{d}d", [taps[:, :, i] for i in range(taps.shape[2])]))
        if conv in ("flat", "both"):
            rows.append(row("[flat]" if conv == "both" else "", f"conv{d}d_flat",
                            [w.reshape(out, -1)]))
        return rows

    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or (
        module is None and "embed" in name.lower() and t.dim() == 2
    ):
        return [row("", "embedding", [t])]

    if t.dim() == 2:
        kind = "linear" if isinstance(module, nn.Linear) else "matrix"
        return [row("", kind, [t])]

    # any other tensor: drop leading singleton axes, then (shape[0], prod(rest))
    s = _squeeze_leading(t)
    if s.dim() == 2:
        return [row("", "matrix", [s])]
    if s.dim() < 2 or min(s.shape) == 1 and s.numel() == max(s.shape):
        return skip("tensor", "a vector once singleton axes are dropped: no matrix spectrum")
    return [row("", f"tensor{s.dim()}d_flat", [s.reshape(s.shape[0], -1)])]


# ----------------------------------------------------------------------------------------------
# whole models / state dicts


def _fingerprint(t: torch.Tensor) -> tuple[Any, ...]:
    """Shape, dtype and ~1000 strided entries: cheap; equal tensors always share it."""
    f = t.detach().reshape(-1)
    step = max(1, f.numel() // 1024)
    return (tuple(t.shape), str(t.dtype), tuple(f[::step].tolist()))


def layer_matrices(
    source: nn.Module | Mapping[str, torch.Tensor],
    *,
    conv: str = "pooled",
    dedupe: bool = True,
) -> list[LayerMatrix]:
    """Every >= 2-D parameter of a model or state dict as :class:`LayerMatrix` rows.

    With a model, ``named_parameters`` is walked module by module (the module type decides how a
    tensor is sliced); a state dict is classified from names and shapes. ``dedupe`` marks tensors
    equal to an earlier one (``duplicate_of``), which are then computed once.
    """
    if conv not in ("pooled", "flat", "both"):
        raise InspectKitError(f"conv must be 'pooled', 'flat' or 'both', got {conv!r}")
    items: list[tuple[str, torch.Tensor, nn.Module | None, int | None]] = []
    if isinstance(source, nn.Module):
        for mname, module in source.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                full = f"{mname}.{pname}" if mname else pname
                if p.dim() < 2:
                    continue
                items.append((full, p, module, getattr(module, "hidden_size", None)))
    elif isinstance(source, Mapping):
        sd = dict(source)
        hiddens = _rnn_hidden_sizes(sd)
        for k, v in sd.items():
            if not isinstance(v, torch.Tensor) or v.dim() < 2:
                continue
            items.append((k, v, None, hiddens.get(k)))
    else:
        raise InspectKitError(
            f"esd needs an nn.Module, a state dict or a checkpoint path, got {type(source).__name__}"
        )

    shape_count: dict[tuple[int, ...], int] = {}
    for _, t, _, _ in items:
        shape_count[tuple(t.shape)] = shape_count.get(tuple(t.shape), 0) + 1
    rows: list[LayerMatrix] = []
    first_of: dict[tuple[Any, ...], list[tuple[str, torch.Tensor]]] = {}
    ptr_of: dict[int, str] = {}
    for name, t, module, hidden in items:
        dup = None
        if dedupe and t.is_floating_point():
            ptr = t.data_ptr()
            if ptr in ptr_of and t.numel() > 0:
                dup = ptr_of[ptr]
            elif shape_count[tuple(t.shape)] > 1:
                fp = _fingerprint(t)
                for other_name, other in first_of.get(fp, []):
                    if other.shape == t.shape and torch.equal(other, t):
                        dup = other_name
                        break
                if dup is None:
                    first_of.setdefault(fp, []).append((name, t))
            if dup is None:
                ptr_of[ptr] = name
        new = classify(name, t, module, conv=conv, hidden=hidden)
        if dup is not None:
            for r in new:
                r.duplicate_of = r.name.replace(name, dup, 1)
        rows.extend(new)
    return rows


def _rnn_hidden_sizes(sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Hidden size for every ``*weight_ih_l*`` key, read from its ``weight_hh`` sibling."""
    out: dict[str, int] = {}
    for k, v in sd.items():
        leaf = k.rsplit(".", 1)[-1]
        if leaf.startswith("weight_hh_l") and isinstance(v, torch.Tensor) and v.dim() == 2:
            h = int(v.shape[1])
            out[k] = h
            out[k.replace("weight_hh_l", "weight_ih_l")] = h
    return out


def names(rows: Iterable[LayerMatrix]) -> list[str]:
    """Row names in order (helper for tests and tables)."""
    return [r.name for r in rows]
