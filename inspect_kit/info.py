"""A short description of a checkpoint and the model it rebuilds (``inspect-kit info``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torch import nn

from .checkpoints import Checkpoint
from .results import WHOLE, Result, measure


@dataclasses.dataclass(frozen=True)
class CheckpointInfo(Result):
    """Format, zoo spec, model class, parameter count, tensors and trajectory length."""

    path: str
    zoo: dict[str, Any] | None
    model_class: str
    n_parameters: int
    n_trainable: int
    tensors: list[dict[str, Any]]
    trajectory_length: int

    @classmethod
    def of(cls, ckpt: Checkpoint, model: nn.Module) -> CheckpointInfo:
        return cls(
            path=ckpt.path,
            zoo=ckpt.zoo_spec,
            model_class=type(model).__name__,
            n_parameters=sum(p.numel() for p in model.parameters()),
            n_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
            tensors=[{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                     for k, v in ckpt.state_dict.items()],
            trajectory_length=len(ckpt.trajectory),
        )

    item_keys: ClassVar[tuple[str, ...]] = ("name",)

    def rows(self) -> list[dict[str, Any]]:
        return self.tensors

    def headline(self) -> list[dict[str, Any]]:
        """Parameter counts, tensors and trajectory snapshots."""
        return [measure(WHOLE, "n_parameters", self.n_parameters),
                measure(WHOLE, "n_trainable", self.n_trainable),
                measure(WHOLE, "tensors", len(self.tensors)),
                measure(WHOLE, "trajectory_length", self.trajectory_length)]

    def summary(self) -> str:
        arch = f"zoo:{self.zoo['name']} {self.zoo['kwargs']}" if self.zoo else self.model_class
        return (f"{self.path}: {arch}, {self.n_parameters:,} parameters "
                f"({self.n_trainable:,} trainable), {len(self.tensors)} tensors, "
                f"{self.trajectory_length} trajectory snapshots")
