"""KAN diagram benchmark: pykan's ``model.plot()`` vs ours (sample_edges + attribute + diagram).

Same pykan ``MultKAN`` models, same 1000 input points, one process, pykan and ours interleaved
round-robin, best of ``--repeats``. Both sides end with a PNG of the whole network on disk:

* pykan: ``model(x)`` (fills its activation cache) -> ``model.plot(folder=tmp, metric="backward")``
  (one 400-dpi PNG per edge, re-read and composited) -> ``savefig``;
* ours: ``sample_edges(model, (x, y))`` (201 dense points per edge + observed points) ->
  ``attribute(model, (x, y))`` (pykan-identical backward scores) -> ``diagram(samples, scores)``
  (one vector figure) -> ``save_figure``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_kan_plot.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("INSPECT_KIT_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

from inspect_kit.io import save_figure  # noqa: E402
from inspect_kit.kan.attribution import attribute  # noqa: E402
from inspect_kit.kan.sampling import sample_edges  # noqa: E402
from plotting.kan import diagram  # noqa: E402


def _pykan(model, x, folder):
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    model(x)
    model.plot(folder=os.path.join(folder, "figs"), beta=3, metric="backward")
    fig = plt.gcf()
    fig.savefig(os.path.join(folder, "pykan.png"))
    plt.close("all")
    return time.perf_counter() - t0


def _ours(model, x, y, folder):
    t0 = time.perf_counter()
    s = sample_edges(model, (x, y))
    a = attribute(model, (x, y), knockout=False)
    fig = diagram(s, a)
    save_figure(fig, os.path.join(folder, "ours.png"))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import kan

    g = torch.Generator().manual_seed(0)
    print(f"# machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print("| width | edges | pykan plot (s) | ours (s) | ratio pykan/ours |")
    print("|---|---|---|---|---|")
    for width in ([2, 5, 1], [4, 8, 3]):
        with tempfile.TemporaryDirectory() as tmp:
            model = kan.MultKAN(width=list(width), grid=5, k=3, seed=0, auto_save=False,
                                ckpt_path=os.path.join(tmp, "ckpt"))
            x = torch.rand(1000, width[0], generator=g) * 2 - 1
            y = torch.zeros(1000, width[-1])
            n_edges = sum(a * b for a, b in zip(width[:-1], width[1:]))
            tp, to = [], []
            for _ in range(args.repeats):
                tp.append(_pykan(model, x, tmp))
                to.append(_ours(model, x, y, tmp))
            print(f"| {width} | {n_edges} | {min(tp):.2f} | {min(to):.2f} | {min(tp) / min(to):.1f}x |")


if __name__ == "__main__":
    main()
