"""Gallery section: the empirical NTK of the digits MLP, at initialisation and along training."""

from __future__ import annotations

from typing import Any

from .context import Gallery
from .models import mlp_digits


def _at(model: Any, state: dict[str, Any]) -> Any:
    import copy

    other = copy.deepcopy(model)
    other.load_state_dict(state)
    return other


def render(g: Gallery) -> None:
    from analyses.ntk import ntk
    from plotting.ntk import plot_kernel_trajectory, plot_ntk

    data = g.data("digits")
    model, ck = mlp_digits(g, 0)
    epochs = ck.meta["extra"]["snapshot_epochs"]
    init = _at(model, ck.trajectory[0])
    n = 60 if g.quick else 200
    g.note(f"The empirical NTK Θ(x, x') = J(x) J(x')ᵀ of the section-2 MLP (seed 0) on a seeded "
           f"draw of {n} training digits, at initialisation and after each epoch of Adam.")

    with g.step("MLP · NTK (trained vs initial, GGN check)"):
        r = ntk(model, data, samples=n, kernel="trace", top_k=10, compare=init, ggn_check=True,
                dtype="float64", seed=0, progress=False)
    ch = r.change
    g.add(plot_ntk(r), "ntk_mlp.png", "MLP: empirical NTK after training",
          "Trace-over-outputs kernel (samples sorted by class: the class blocks are what "
          "training adds), its top eigenvalues beside the initial kernel's, and the check that "
          "the GGN of the cross-entropy and the loss-weighted full kernel share their spectrum.",
          {"samples × outputs": f"{r.n_samples} × {r.n_outputs}",
           "method (cost model)": f"{r.method} (predicted {r.costs['contraction']['seconds']:.2g}"
                                  f" s vs ntvp {r.costs['ntvp']['seconds']:.2g} s)",
           "top eigenvalue, initial → trained": f"{ch['compare_eigenvalues'][0]:.4g} → "
                                                 f"{r.eigenvalues[0]:.4g}",
           "relative change ‖Θ−Θ₀‖/‖Θ₀‖": ch["relative_frobenius"],
           "kernel alignment / CKA with Θ₀": f"{ch['alignment']:.3f} / {ch['cka']:.3f}",
           "kernel-target alignment": r.target_alignment,
           "GGN vs kernel eigenvalues, max relative difference":
               r.ggn["max_relative_difference"]}, result=r)

    picks = epochs if len(epochs) <= 6 else epochs[::max(1, len(epochs) // 10)]
    if epochs[-1] not in picks:
        picks = [*picks, epochs[-1]]
    m = 40 if g.quick else 120
    results = []
    with g.step(f"MLP · NTK along training ({len(picks)} snapshots)"):
        for e in picks:
            results.append(ntk(_at(model, ck.trajectory[epochs.index(e)]), data, samples=m,
                               kernel="trace", top_k=1, compare=init, seed=1, progress=False))
    last = results[-1]
    g.add(plot_kernel_trajectory(results, picks), "ntk_mlp_training.png",
          "MLP: how the NTK moves during training",
          "Each snapshot's kernel on a fixed draw of samples against the initial one (relative "
          "Frobenius distance, alignment, CKA), its centred alignment with the one-hot labels "
          "and its top eigenvalue. In the lazy (kernel) regime all of these would stay put.",
          {"snapshots": len(picks), "samples": m,
           f"relative change at epoch {picks[-1]}": last.change["relative_frobenius"],
           f"CKA with the initial kernel at epoch {picks[-1]}": last.change["cka"],
           "kernel-target alignment, epoch 0 → last":
               f"{results[0].target_alignment:.3f} → {last.target_alignment:.3f}"})
