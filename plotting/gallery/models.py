"""The gallery's models: seeded recipes, full and quick budgets, cached by :class:`Gallery`."""

from __future__ import annotations

from typing import Any

from .context import Gallery


def _history_extra(res: Any) -> dict[str, Any]:
    return {"history": res.history, "snapshot_epochs": res.snapshot_epochs,
            "train_seconds": res.seconds}


def mlp_digits(g: Gallery, seed: int) -> tuple[Any, Any]:
    """An MLP 64-128-128-10 on digits with snapshots every epoch (for PCA paths)."""
    from inspect_kit.zoo.train import train_zoo

    epochs = 3 if g.quick else 20

    def train() -> tuple[Any, list, dict]:
        model, res = train_zoo("mlp", g.data("digits"), seed=seed, epochs=epochs,
                               snapshot_every=1, progress=False)
        return model, res.snapshots, _history_extra(res)

    return g.model(f"mlp-digits-seed{seed}", train)


def kan_digits(g: Gallery) -> tuple[Any, Any]:
    """A zoo KAN [64, 16, 10] classifier on digits (Adam), snapshots every epoch."""
    from inspect_kit.zoo.train import train_zoo

    width = [64, 4, 10] if g.quick else [64, 16, 10]
    epochs = 2 if g.quick else 12

    def train() -> tuple[Any, list, dict]:
        model, res = train_zoo("kan", g.data("digits"), model_kwargs={"width": width},
                               epochs=epochs, optimizer="adam", lr=3e-3, batch_size=64,
                               snapshot_every=1, progress=False)
        return model, res.snapshots, _history_extra(res)

    return g.model("kan-digits", train)


def vit_digits(g: Gallery, attention: str) -> tuple[Any, Any]:
    """The tiny ViT on digits with softmax or Fourier-KArAt attention; snapshots along the way."""
    from inspect_kit.zoo.train import train_zoo

    kwargs: dict[str, Any] = {"attention": attention}
    if g.quick:
        kwargs.update(dim=16, depth=1, heads=2)
    epochs = 2 if g.quick else 24
    every = 1 if g.quick else 3

    def train() -> tuple[Any, list, dict]:
        model, res = train_zoo("vit", g.data("digits"), model_kwargs=kwargs, epochs=epochs,
                               snapshot_every=every, progress=False)
        return model, res.snapshots, _history_extra(res)

    return g.model(f"vit-{attention}", train)
