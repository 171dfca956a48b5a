"""A short description of a checkpoint and the model it rebuilds (``inspect-kit info``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from .checkpoints import Checkpoint
from .results import Result


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

    def rows(self) -> list[dict[str, Any]]:
        return self.tensors

    def summary(self) -> str:
        arch = f"zoo:{self.zoo['name']} {self.zoo['kwargs']}" if self.zoo else self.model_class
        return (f"{self.path}: {arch}, {self.n_parameters:,} parameters "
                f"({self.n_trainable:,} trainable), {len(self.tensors)} tensors, "
                f"{self.trajectory_length} trajectory snapshots")
