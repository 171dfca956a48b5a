"""Papyan's class / cross-class outliers of the GGN on digits classifiers, checked against the
dense GGN, with the figure.

Two models, trained here (seeded, float32 training, analysed in float64):

* ``small``: MLP 64-24-10 (1,810 parameters), small enough to form the GGN densely:
  ``G = sum_i J_i^T (diag p_i - p_i p_i^T) J_i / N`` from ``torch.func.jacrev`` (no kit code);
  the top ``C^2 + 10`` eigenvalues of ``outliers()`` are compared with ``eigvalsh(G)``;
* ``mlp``: the zoo MLP 64-128-128-10 (26,122 parameters), the README's model; its counts and
  figure.

Printed per model: the counts of eigenvalues the decomposition attributes to the class means
("class", expected C - 1 or C), to the class-pair directions ("cross-class", C(C-1) in Papyan's
idealised picture) and to the bulk; the ratio at the last attributed eigenvalue (``gap``), the
negative mass of ``H - G``, the seconds, and for ``small`` the largest relative error against the
dense eigenvalues. The figure of the ``mlp`` run is written to
``benchmarks/figures/outliers_digits.png``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_outliers.py [--epochs 30]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call, jacrev  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def dense_ggn(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The GGN of the mean cross-entropy, formed densely in float64 (independent of the kit)."""
    m = __import__("copy").deepcopy(model).double().eval()
    names = [n for n, _ in m.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    shapes = [p.shape for p in m.parameters()]

    def f(theta: torch.Tensor) -> torch.Tensor:
        ps, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            ps[n] = theta[i:i + k].reshape(s)
            i += k
        return functional_call(m, ps, (x.double(),))

    J = jacrev(f)(flat)  # (N, C, P)
    p = torch.softmax(f(flat), -1)
    H = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return torch.einsum("icn,icd,idm->nm", J, H, J) / len(x)


def run(name: str, model: torch.nn.Module, data, dense: bool, fig: str | None) -> None:
    from analyses.hessian.outliers import outliers

    t0 = time.process_time()
    res = outliers(model, data, dtype="float64", progress=False)
    secs = time.process_time() - t0
    n = sum(p.numel() for p in model.parameters())
    neg = (res.residual or {}).get("negative_mass")
    print(f"[{name}] {n:,} parameters, C = {res.n_classes}, N = {res.n_samples}: "
          f"{len(res.ggn_eigenvalues)} top GGN eigenvalues in {secs:.1f} s CPU")
    print(f"  counts {res.counts}; gap at the last attributed eigenvalue "
          f"{res.gap if res.gap is None else round(res.gap, 3)}; H - G negative mass {neg}")
    ev = res.ggn_eigenvalues
    print("  top eigenvalues: " + ", ".join(f"{v:.4g}" for v in ev[:12]) + " ...")
    kinds = res.kinds
    last = max((i for i, k in enumerate(kinds) if k != "bulk"), default=-1)
    print("  kinds in order: " + "".join({"class": "C", "cross-class": "x", "bulk": "."}[k]
                                         for k in kinds))
    if last >= 0 and last + 1 < len(ev):
        print(f"  eigenvalue {last + 1} (last attributed) {ev[last]:.4g}, next {ev[last + 1]:.4g}")
    if dense:
        t0 = time.process_time()
        truth = torch.linalg.eigvalsh(dense_ggn(model, data[0])).flip(0).numpy()
        k = len(ev)
        err = np.max(np.abs(ev - truth[:k]) / np.abs(truth[:k]).max())
        b = res.n_classes * (res.n_classes - 1)
        print(f"  dense GGN ({time.process_time() - t0:.1f} s): max |lambda_kit - lambda_dense| "
              f"/ lambda_max over the top {k} = {err:.2e}; dense lambda_{b} = {truth[b - 1]:.4g},"
              f" lambda_{b + 1} = {truth[b]:.4g}")
    if fig:
        from plotting.outliers import plot_outliers

        f = plot_outliers(res)
        os.makedirs(os.path.dirname(fig), exist_ok=True)
        f.savefig(fig, dpi=110)
        print(f"  figure -> {os.path.relpath(fig, os.path.join(HERE, '..'))}")


def main() -> None:
    from inspect_kit import zoo
    from inspect_kit.data import load_data
    from inspect_kit.zoo.train import fit

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# bench_outliers  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
          f"{platform.machine()}, torch {torch.__version__}, load avg {os.getloadavg()[0]:.1f}")
    bundle = load_data("digits")
    data = (bundle.x_train, bundle.y_train)
    for name, sizes, dense, fig in (("small", (64, 24, 10), True, None),
                                    ("mlp", (64, 128, 128, 10), False,
                                     os.path.join(HERE, "figures", "outliers_digits.png"))):
        model = zoo.build("mlp", sizes=sizes, seed=0)
        fit(model, data, epochs=args.epochs, seed=0, progress=False)
        with torch.no_grad():
            acc = float((model(data[0]).argmax(-1) == data[1]).float().mean())
        print(f"trained {name} {sizes}: train accuracy {acc:.3f}")
        run(name, model, data, dense, fig)


if __name__ == "__main__":
    main()
