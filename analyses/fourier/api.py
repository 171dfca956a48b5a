"""``fourier(model, data)``: the Fourier audit of a network trained on ``(a + b) mod p``.

Nanda, Chan, Lieberum, Smith, Steinhardt 2023, "Progress measures for grokking via mechanistic
interpretability" (arXiv 2301.05217): a network that groks modular addition embeds each residue
on a few circles ``(cos w_k a, sin w_k a)`` (key frequencies ``w_k = 2 pi k / p``), each neuron
computes with one of them, and its logits are sums of ``cos(w_k (a + b - c))``. This analysis
measures all of it on any model taking ``(a, b)`` tokens:

1. the spectrum of the embedding over Z_p (:mod:`.spectrum`) and the key frequencies;
2. one forward pass of the model view over all ``p^2`` inputs (:mod:`.grid`): the 2-D spectra
   of the neurons (dominant frequency and purity per neuron, :mod:`.neurons`) and of the logits;
3. the full, restricted and excluded loss and accuracy on the train and test splits
   (:mod:`.ablation`), and the same per training snapshot (:mod:`.trajectory`).

The model is never modified: the view evaluates it functionally, the neuron hook is removed on
exit and the mode flags are restored.

>>> from inspect_kit.zoo import build
>>> r = fourier(build("modadd", p=7, d=4, width=8), "modadd:7:0.5", key_frequencies=[2],
...             progress=False)
>>> r.key_frequencies, sorted(r.metrics), r.neuron_fractions.shape
((2,), ['all', 'test', 'train'], (8, 4))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from inspect_kit.data import DataBundle, load_data
from inspect_kit.errors import DataError, OptionError
from inspect_kit.progress import bar
from inspect_kit.provenance import entry_point
from inspect_kit.view import ModelView
from inspect_kit.view.batches import concat
from inspect_kit.zoo import spec_of

from .ablation import sum_energy
from .basis import transform_2d
from .grid import grid_batch, pairs_of, run_grid
from .locate import resolve, token_matrix
from .neurons import neuron_stats
from .result import FourierResult
from .spectrum import key_frequencies_by_gap, key_share, spectrum, top_frequencies
from .trajectory import measures, trajectory_measures

KEY_RULES = ("embedding", "neurons", "logits")
SPLITS = ("train", "test", "both")


def _splits(data: Any, split: str) -> list[str]:
    if split != "both":
        return [split]
    has_test = isinstance(data, DataBundle) and data.x_test is not None
    return ["train", "test"] if has_test else ["train"]


def _infer_p(model: nn.Module, data: Any, view: ModelView) -> int:
    if isinstance(data, DataBundle) and data.n_classes:
        return int(data.n_classes)
    if isinstance(getattr(model, "p", None), int):
        return int(model.p)
    with torch.no_grad(), view.mode():
        out = view.call(view.state, view.batches[0].take(torch.arange(1)))
    return int(out.shape[-1])


def _key(rule: str | int | Sequence[int], energies: Mapping[str, torch.Tensor | None], K: int
         ) -> tuple[list[int], str]:
    if isinstance(rule, str):
        energy = energies[rule]
        if energy is None:
            raise OptionError("key_frequencies='neurons' needs the neurons; pass neurons='module "
                              "name' or use key_frequencies='embedding'")
        return key_frequencies_by_gap(energy), f"largest gap of the {rule} spectrum"
    if isinstance(rule, int):
        return top_frequencies(energies["embedding"], rule), f"top {rule} of the embedding"
    key = sorted({int(k) for k in rule})
    if not key or key[0] < 1 or key[-1] > K:
        raise OptionError(f"key_frequencies={list(rule)} must be frequencies between 1 and {K}")
    return key, "given"


def _check(key_frequencies: Any, split: str, operands: Any, position: Any, p: Any) -> None:
    ok = (isinstance(key_frequencies, str) and key_frequencies in KEY_RULES) or (
        isinstance(key_frequencies, int) and not isinstance(key_frequencies, bool)) or (
        isinstance(key_frequencies, (list, tuple)) and all(
            isinstance(k, int) and not isinstance(k, bool) for k in key_frequencies))
    if not ok:
        raise OptionError(f"key_frequencies must be one of {KEY_RULES}, a count or a list of "
                          f"frequencies, got {key_frequencies!r}")
    if split not in SPLITS:
        raise OptionError(f"split must be one of {SPLITS}, got {split!r}")
    if not (isinstance(operands, (list, tuple)) and len(operands) == 2
            and all(isinstance(o, int) for o in operands)):
        raise OptionError(f"operands must be two column indices like (0, 1), got {operands!r}")
    if position is not None and not isinstance(position, int):
        raise OptionError(f"position must be an int (e.g. -1) or None, got {position!r}")
    if p is not None and (not isinstance(p, int) or p < 3):
        raise OptionError(f"p must be an int >= 3 (the modulus) or None, got {p!r}")


@entry_point("fourier")
def fourier(
    model: nn.Module,
    data: Any,
    *,
    p: int | None = None,
    key_frequencies: str | int | Sequence[int] = "embedding",
    embedding: str | None = None,
    neurons: str | None = None,
    unembedding: str | None = None,
    position: int | None = None,
    operands: tuple[int, int] = (0, 1),
    trajectory: Sequence[Mapping[str, torch.Tensor]] | None = None,
    snapshot_epochs: Sequence[float] | None = None,
    split: str = "both",
    samples: int | None = None,
    seed: int = 0,
    model_mode: str | None = "eval",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> FourierResult:
    """Fourier spectra, key frequencies, neuron purity and restricted/excluded loss of a
    modular-addition model (module docstring).

    Args:
        model: a network taking integer inputs that hold ``a`` and ``b`` (zoo ``modadd`` or any
            other; see :mod:`.locate` for how its parts are found).
        data: the data it was trained on (``"modadd:59"``, a DataBundle, ``(X, y)``): the splits
            for the losses and the input format of the grid.
        p: the modulus (default: the data set's class count, ``model.p``, or the model's
            output width).
        key_frequencies: ``"embedding"`` (largest gap of the embedding spectrum, default),
            ``"neurons"`` or ``"logits"`` (the same rule on those spectra), a count ``n`` (the
            ``n`` largest of the embedding) or an explicit list.
        embedding, neurons, unembedding, position: where the model keeps them (:mod:`.locate`).
        operands: the input columns holding ``a`` and ``b``.
        trajectory: training snapshots (state dicts, e.g. ``load_checkpoint(path).trajectory``);
            ``snapshot_epochs`` labels them (default ``0, 1, 2, ...``).
        split: ``"train"``, ``"test"`` or ``"both"`` (the test split when the data has one; then
            the metrics also hold ``"all"``, the two splits together).
        samples, seed: a seeded draw of the split's samples for the losses.
        model_mode, dtype, device: the model view's options.
    """
    _check(key_frequencies, split, operands, position, p)
    operands = (int(operands[0]), int(operands[1]))
    if isinstance(data, str):
        data = load_data(data)
    views = {s: ModelView(model, data, split=s, samples=samples, seed=seed, model_mode=model_mode,
                          dtype=dtype, device=device) for s in _splits(data, split)}
    view = next(iter(views.values()))
    p = int(p) if p is not None else _infer_p(model, data, view)
    splits = {}
    for s, v in views.items():
        whole = concat(v.batches)
        if whole.target is None:
            raise DataError("the Fourier audit needs labelled data ((a + b) mod p targets)")
        splits[s] = (pairs_of(whole.x, operands, p), whole.target)
    if len(splits) == 2:  # the full data set, as in the paper's restricted loss
        splits["all"] = (torch.cat([splits["train"][0], splits["test"][0]]),
                         torch.cat([splits["train"][1], splits["test"][1]]))
    points = resolve(model, p, embedding=embedding, neurons=neurons, unembedding=unembedding,
                     position=position)
    batch = grid_batch(concat(view.batches).x[:1], operands, p)
    with bar(1, "fourier", progress) as pb:
        logits, acts = run_grid(view, view.state, batch, p, neurons=points.neurons,
                                position=points.position)
        pb.update(1)
    K = p // 2
    emb_energy = spectrum(token_matrix(view.state, points.embedding, points.embedding_axis, p), p)
    stats = neuron_stats(acts, p) if acts is not None else None
    logit_energy = sum_energy(logits)
    key, rule = _key(key_frequencies, {"embedding": emb_energy, "logits": logit_energy,
                                       "neurons": stats.energy if stats else None}, K)
    centred = logits - logits.mean((0, 1), keepdim=True)
    logit_sq = transform_2d(centred, p).pow(2).sum(-1)
    logit_spectrum = logit_sq / logit_sq.sum() if float(logit_sq.sum()) > 0 else logit_sq
    unemb = None
    if points.unembedding is not None:
        unemb = spectrum(token_matrix(view.state, points.unembedding, points.unembedding_axis,
                                      p), p).sqrt().numpy()
    traj = None
    if trajectory is not None:
        snaps = list(trajectory)
        epochs = list(snapshot_epochs) if snapshot_epochs is not None else list(range(len(snaps)))
        if len(epochs) != len(snaps):
            raise OptionError(f"snapshot_epochs has {len(epochs)} entries for {len(snaps)} "
                              "snapshots; pass one label per snapshot")
        traj = trajectory_measures(view, snaps, epochs, batch, points, p, key, splits, progress)
    spec = spec_of(model)
    return FourierResult(
        p=p, model=f"zoo:{spec['name']} {spec['kwargs']}" if spec else type(model).__name__,
        embedding=points.embedding, neurons=points.neurons, unembedding=points.unembedding,
        key_rule=rule, key_frequencies=tuple(key), key_share=key_share(emb_energy, key),
        embedding_spectrum=emb_energy.sqrt().numpy(), logit_energy=logit_energy.numpy(),
        logit_spectrum=logit_spectrum.numpy(), metrics=measures(logits, key, splits),
        unembedding_spectrum=unemb,
        neuron_fractions=stats.fractions.numpy() if stats else None,
        neuron_frequency=stats.frequency.numpy() if stats else None,
        neuron_purity=stats.purity.numpy() if stats else None,
        neuron_spectrum=stats.spectrum.numpy() if stats else None,
        trajectory=traj, provenance={"view": view.options, "p": p})
