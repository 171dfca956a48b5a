"""Gallery section: the intrinsic dimension (Li et al. 2018) of the digits MLP."""

from __future__ import annotations

from typing import Any

from .context import Gallery
from .models import mlp_digits


def _found(r: Any, name: str) -> str:
    d = r.d_int90[name]
    if d is None:
        return f"not reached up to d = {max(r.dims)}"
    lo, hi = r.brackets[name]
    return f"{d} (between {lo} and {hi})"


def render(g: Gallery) -> None:
    import copy

    from analyses.intrinsic_dimension import intrinsic_dimension
    from plotting.intrinsic_dimension import plot_intrinsic_dimension

    data = g.data("digits")
    trained, ck = mlp_digits(g, 0)
    init = copy.deepcopy(trained)
    init.load_state_dict(ck.trajectory[0])  # theta_0: the MLP's initialisation
    dims = [64, 256, 1024, 4096] if g.quick else [16, 32, 64, 128, 256, 512, 1024]
    epochs = 4 if g.quick else 10
    with g.step(f"MLP · intrinsic dimension ({len(dims)}-point grid, Fastfood)"):
        r = intrinsic_dimension(init, data, dims=dims, refine=0 if g.quick else 2,
                                epochs=epochs, projection="fastfood", seed=0, progress=False)
    g.note(f"Random-subspace training θ = θ₀ + P z of the section-2 MLP from its initialisation "
           f"({r.n_params} parameters; Fastfood P, Adam on z, {epochs} epochs per d), against "
           "the same MLP trained directly for the same epochs.")
    g.add(plot_intrinsic_dimension(r), "intrinsic_dimension_mlp.png",
          "MLP: intrinsic dimension of the digits objective",
          "Test accuracy after subspace training against d (log axis) with both readings of "
          "'90% of the full model', and every run's training curve. The chance-to-full reading "
          "is the stricter one.",
          {"parameters D": r.n_params,
           "full-model / chance test accuracy": f"{r.full_accuracy:.3f} / "
                                                f"{r.chance_accuracy:.3f}",
           "d_int90, 90% of full accuracy (Li et al.)": _found(r, "relative"),
           "d_int90, 90% of the chance-to-full gap": _found(r, "gap"),
           "runs (seconds each, median)": f"{len(r.dims)} "
                                          f"({sorted(r.seconds_per_run)[len(r.dims) // 2]:.1f})"},
          result=r)
