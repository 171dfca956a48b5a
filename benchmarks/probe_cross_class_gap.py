"""Probe (issue 18): does a digits MLP trained into the terminal phase (SGD + momentum, weight
decay, cosine schedule, optional label smoothing; float64) show Papyan's C(C-1) = 90 cross-class
GGN outliers separated from the bulk?

Forms the dense GGN ``J^T (diag p - p p^T) J / N`` over the 1,437 training digits
(``bench_outliers.dense_ggn``, no kit code) and prints the
top eigenvalues, the ratios lambda_k / lambda_{k+1} around k = 10 and k = 90, and the largest
gaps after rank 10.

Run: ``OMP_NUM_THREADS=1 python benchmarks/probe_cross_class_gap.py SIZES EPOCHS WD [SMOOTHING]``,
e.g. ``64-64-64-10 300 5e-4 0.1``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_outliers import dense_ggn  # noqa: E402
from torch import nn  # noqa: E402

from inspect_kit.data import load_data  # noqa: E402


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    d = load_data("digits")
    X, y = d.x_train.double(), d.y_train
    sizes = [int(s) for s in argv[0].split("-")]
    epochs, wd = int(argv[1]), float(argv[2])
    smoothing = float(argv[3]) if len(argv) > 3 else 0.0
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    m = nn.Sequential(*layers[:-1]).double()
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(m(X[idx]), y[idx], label_smoothing=smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        out = m(X)
    acc = (out.argmax(1) == y).double().mean().item()
    G = dense_ggn(m, X)
    ev = torch.linalg.eigvalsh(G).flip(0).numpy()
    print(f"{argv} P={G.shape[0]} train acc={acc:.4f} loss={F.cross_entropy(out, y).item():.4f}")
    print("top 12 / lambda_1:", np.round(ev[:12] / ev[0], 4).tolist())
    print("lambda_k / lambda_k+1:", {k: round(float(ev[k - 1] / ev[k]), 3)
                                     for k in (9, 10, 11, 89, 90, 91, 99, 100)})
    gaps = ev[:120] / ev[1:121]
    top = np.argsort(-gaps[10:])[:5] + 10
    print("largest gaps after rank 10:", [(int(k) + 1, round(float(gaps[k]), 3)) for k in top])


if __name__ == "__main__":
    main(sys.argv[1:])
