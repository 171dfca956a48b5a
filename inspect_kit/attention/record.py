"""What a capture records: one :class:`AttentionMap` per attention call, in call order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import OptionError


@dataclasses.dataclass
class AttentionMap:
    """One attention call: ``weights`` (B, H, Q, K) and, where available, ``scores`` (same shape).

    ``softmax`` is True when the weights are a row softmax of the scores by construction (MHA,
    SDPA, HF attention, timm's explicit path, a softmax ``attn_fn``): rows are probability
    vectors. ``call`` counts the calls of the same module inside the context (0 for the first
    forward); ``seq`` is the global call order. ``windows`` describes windowed attention (Swin,
    Liu et al. 2021), where B counts (image, window) pairs, image-major: ``window_size``
    (wh, ww), ``shift_size`` (sh, sw) and, when the block declares it, the feature map
    ``resolution`` (H, W) and the window ``grid`` (rows, cols); None for global attention.
    """

    name: str
    family: str
    module_type: str
    weights: torch.Tensor
    scores: torch.Tensor | None
    softmax: bool
    call: int = 0
    seq: int = 0
    windows: dict[str, Any] | None = None


class AttentionRecording:
    """What :func:`~inspect_kit.attention.capture_attention` recorded; ``maps`` in call order."""

    def __init__(self) -> None:
        self._maps: list[AttentionMap] = []
        self._pending: list[Callable[[], list[AttentionMap]]] = []
        #: why something could not be recorded (shown in the analysis' error message)
        self.problems: list[str] = []

    @property
    def maps(self) -> list[AttentionMap]:
        maps = list(self._maps)
        for source in self._pending:
            maps.extend(source())
        return sorted(maps, key=lambda m: m.seq)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.maps]

    def __len__(self) -> int:
        return len(self.maps)

    def __iter__(self) -> Iterator[AttentionMap]:
        return iter(self.maps)

    def __getitem__(self, key: int | str) -> AttentionMap:
        maps = self.maps
        if isinstance(key, int):
            return maps[key]
        hits = [m for m in maps if m.name == key]
        if not hits:
            raise OptionError(f"no attention recorded for {key!r}; recorded: {self.names}")
        return hits[-1]

    def add(self, m: AttentionMap) -> None:
        self._maps.append(m)

    def _freeze(self) -> None:
        self._maps = self.maps
        self._pending = []


def as_bhqk(t: torch.Tensor) -> torch.Tensor:
    """Any (Q, K), (H, Q, K), (B, H, Q, K) or (..., H, Q, K) tensor as (B, H, Q, K)."""
    if t.dim() == 3:
        return t.unsqueeze(0)
    if t.dim() == 2:
        return t[None, None]
    if t.dim() > 4:
        return t.reshape(-1, t.shape[-3], t.shape[-2], t.shape[-1])
    return t


def store(t: torch.Tensor | None, detach: bool, device: str | None) -> torch.Tensor | None:
    """``t`` as kept in a recording: detached (by default), on ``device``, as (B, H, Q, K)."""
    if t is None:
        return None
    t = t.detach() if detach else t
    return as_bhqk(t.to(device) if device is not None else t)


class CallCounter:
    """``next(name) -> (call index of this module, global call order)`` for a new record."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seq = 0

    def __call__(self, name: str) -> tuple[int, int]:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.seq += 1
        return self.counts[name] - 1, self.seq
