"""Gallery section: grokking modular addition and its Fourier features (Nanda et al. 2023).

A zoo ``modadd`` MLP (shared embedding, one ReLU layer) trained full-batch with AdamW and weight
decay 1 memorises its training pairs within a few dozen epochs and generalises hundreds of
epochs later; the Fourier audit (:func:`analyses.fourier.fourier`) of the final model and of its
snapshots shows why.
"""

from __future__ import annotations

from typing import Any

from .context import Gallery

#: full run: p = 59, 40% of the pairs (grokking near epoch 550); quick: p = 23, 70% (near 270)
RECIPES = {
    "full": dict(data="modadd:59:0.4", model_kwargs={"d": 32, "width": 128}, epochs=1500,
                 lr=2e-2, snapshot_every=25),
    "quick": dict(data="modadd:23:0.7", model_kwargs={"d": 16, "width": 64}, epochs=400,
                  lr=3e-2, snapshot_every=20),
}


def _recipe(g: Gallery) -> dict[str, Any]:
    return RECIPES["quick" if g.quick else "full"]


def modadd_model(g: Gallery) -> tuple[Any, Any]:
    """The grokking run (seed 0), cached with its snapshots and history."""
    from inspect_kit.zoo.train import train_zoo

    r = _recipe(g)

    def train() -> tuple[Any, list, dict]:
        model, res = train_zoo("modadd", r["data"], model_kwargs=r["model_kwargs"],
                               epochs=r["epochs"], lr=r["lr"], weight_decay=1.0,
                               snapshot_every=r["snapshot_every"], progress=False)
        return model, res.snapshots, {"history": res.history, "data": r["data"],
                                      "snapshot_epochs": res.snapshot_epochs,
                                      "train_seconds": res.seconds}

    return g.model(f"modadd-{r['data'].replace(':', '-')}", train)


def _first(history: list[dict], key: str, threshold: float) -> int | None:
    return next((int(h["epoch"]) for h in history if h.get(key, 0.0) >= threshold), None)


def _first_below(epochs: Any, values: Any, threshold: float) -> int | None:
    return next((int(e) for e, v in zip(epochs, values) if v < threshold), None)


def render(g: Gallery) -> None:
    import numpy as np

    from analyses.fourier import fourier
    from plotting.fourier import plot_logit_spectrum, plot_neurons, plot_spectrum, plot_training

    model, ck = modadd_model(g)
    extra = ck.meta["extra"]
    hist, data = extra["history"], extra["data"]
    memorised, grokked = _first(hist, "train_acc", 0.99), _first(hist, "test_acc", 0.99)
    r = _recipe(g)
    g.note(f"A zoo `modadd` MLP ({r['model_kwargs']['d']}-dimensional shared embedding of a and "
           f"b, {r['model_kwargs']['width']} ReLU neurons) trained on `{data}` (a + b mod p, "
           f"the training share of all pairs) with full-batch AdamW, lr {r['lr']}, weight decay "
           f"1, for {r['epochs']} epochs: training accuracy reaches 99% at epoch {memorised}, "
           f"test accuracy at epoch {grokked} (grokking).")
    with g.step("modadd · Fourier audit over the trajectory"):
        res = fourier(model, data, trajectory=ck.trajectory,
                      snapshot_epochs=extra["snapshot_epochs"], progress=False)
    key = list(res.key_frequencies)
    m = res.metrics
    logit_share = float(res.logit_energy[key].sum())
    g.add(plot_spectrum(res), "modadd_spectrum.png", "Modular addition: sparse embedding spectrum",
          f"Norm of the embedding W_E per frequency k of Z_{res.p} (rows projected on cos/sin(2 pi "
          f"k x / p)); the key frequencies {key}, found as the largest drop of the sorted "
          f"spectrum, hold {100 * res.key_share:.1f}% of its energy. Line: the unembedding.",
          {"p": res.p, "key frequencies": ", ".join(map(str, key)),
           "key share of W_E energy": f"{100 * res.key_share:.1f}%",
           "key share of logit variance, (a+b) directions": f"{100 * logit_share:.1f}%"},
          result=res)
    alive = res.neuron_frequency > 0
    on_key = int((alive & np.isin(res.neuron_frequency, key)).sum())
    g.add(plot_neurons(res), "modadd_neurons.png", "Modular addition: one frequency per neuron",
          "Share of each neuron's activation variance over all (a, b) explained by each "
          "frequency (its linear and product terms in the 2-D Fourier basis); neurons sorted "
          "by their dominant frequency.",
          {"neurons": len(res.neuron_purity), "on a key frequency": on_key,
           "median purity": float(np.median(res.neuron_purity[alive]))})
    t = res.trajectory
    ep = t["epoch"]
    g.add(plot_training(res), "modadd_training.png", "Grokking: progress measures over training",
          "Train and test loss with the restricted loss (only the key frequencies' cos/sin(w (a+b)) "
          "directions of the logits kept, all pairs) and the excluded loss (those directions "
          "removed, training pairs), per snapshot; right: the key frequencies' share of the "
          "embedding and the sum of squared weights.",
          {"train accuracy 99% at epoch": memorised, "test accuracy 99% at epoch": grokked,
           "restricted loss < 0.1 at epoch": _first_below(ep, t["all_restricted_loss"], 0.1),
           "test loss < 0.1 at epoch": _first_below(ep, t["test_loss"], 0.1),
           "final loss, all pairs (full / restricted)":
               f"{m['all']['loss']:.3g} / {m['all']['restricted_loss']:.3g}",
           "final excluded loss, train": m["train"]["excluded_loss"],
           "final test accuracy": m["test"]["accuracy"]})
    g.add(plot_logit_spectrum(res), "modadd_logits.png",
          "Modular addition: 2-D Fourier energy of the logits",
          "Energy of the logits over (a, b) in the products of the 1-D bases of a and b, summed "
          "over the outputs: it sits on the (cos k, cos k) and (sin k, sin k) entries of the key "
          "frequencies, the two halves of cos(w_k (a + b)).",
          {"share in key (a+b) directions": f"{100 * logit_share:.1f}%"})
