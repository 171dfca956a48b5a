"""Several processes through ``torch.distributed``: setup, data shards and the few collectives.

Launch with ``torchrun --nproc-per-node N -m inspect_kit.cli ...``; torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`setup` joins the
process group with the backend that suits the device (NCCL for CUDA, Gloo for CPU). A single
process needs no launcher: every function here is then the identity (``world_size() == 1``).

Data parallelism follows from the sample-weighted mean: for shards ``S_r`` of ``N_r`` samples,
``N = sum_r N_r``,

    L = (1/N) sum_i l_i = sum_r (N_r / N) L_r,       L_r = (1/N_r) sum_{i in S_r} l_i,

so any quantity linear in the per-sample losses (the loss, its gradient, a Hessian-vector
product) is one ``all_reduce(SUM)`` of ``(N_r / N) * local`` (:func:`weighted_sum`).
:class:`inspect_kit.view.ShardedView` cuts the data into contiguous, deterministic pieces.
Grids of points (landscape planes, interpolation curves) are split by :func:`my_indices` and put
together once at the end by :func:`gather_points` (one collective per run, none per point).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

from .errors import OptionError

#: counts of the collectives issued by this module (tests check one all-reduce per HVP)
CALLS: dict[str, int] = {"all_reduce": 0, "all_gather": 0, "broadcast": 0}


def env_world_size() -> int:
    """``WORLD_SIZE`` set by the launcher (1 without one)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise OptionError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer; launch "
                          "with torchrun --nproc-per-node N") from exc


def is_distributed() -> bool:
    """True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the one that prints, shows progress and writes files."""
    return rank() == 0


def backend_for(device: torch.device | str | None = None) -> str:
    """``"nccl"`` for CUDA devices (when NCCL is built in), ``"gloo"`` otherwise."""
    dev = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if dev.type == "cuda" and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def setup(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by the torchrun environment variables.

    Returns True when a group of more than one process was (or already is) set up, False for a
    single process (nothing is done). On CUDA each process uses device ``LOCAL_RANK``. Non-main
    ranks get ``INSPECT_KIT_PROGRESS=0`` so that only rank 0 shows progress bars.
    """
    if is_distributed():
        return True
    if env_world_size() <= 1:
        return False
    if not dist.is_available():
        raise OptionError("this PyTorch build has no torch.distributed; run one process")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise OptionError(f"WORLD_SIZE > 1 but {missing} are not set; launch with torchrun "
                          "--nproc-per-node N -m inspect_kit.cli ...")
    backend = backend or backend_for()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend,
                            timeout=datetime.timedelta(seconds=float(timeout_s)))
    if dist.get_rank() != 0:
        os.environ["INSPECT_KIT_PROGRESS"] = "0"
    return True


def teardown() -> None:
    """Leave the process group (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_only_output() -> Iterator[None]:
    """Silence stdout on ranks other than 0 (their results are identical)."""
    if is_main():
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def device() -> torch.device:
    """The device collectives run on: this rank's GPU with NCCL, the CPU with Gloo."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- data shards ---------------------------------------------------------------------------------


def bounds(n: int, r: int | None = None, w: int | None = None) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``r`` among ``w`` in a contiguous split of ``n`` items."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    return r * n // w, (r + 1) * n // w


# -- collectives ---------------------------------------------------------------------------------


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (one ``all_reduce``; any shape, e.g. a ``(k, n)`` probe block).

    Returns a new tensor with the same value on every rank (the identity for one process).
    """
    if not is_distributed():
        return t
    dev = device()
    buf = t.detach().to(dev).contiguous().clone()
    CALLS["all_reduce"] += 1
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def weighted_sum(local: torch.Tensor, n_local: int, n_total: int) -> torch.Tensor:
    """``sum_r (n_r / N) local_r``: the full-data mean from per-shard means (one all-reduce)."""
    return all_reduce_sum(local * (n_local / n_total))


def my_indices(indices: Sequence[int]) -> list[int]:
    """This rank's contiguous share of a list of point indices."""
    lo, hi = bounds(len(indices))
    return list(indices[lo:hi])


def gather_points(*columns: list[float]) -> tuple[list[float], ...]:
    """Merge per-rank columns of point values (NaN where a rank did not evaluate the point).

    One ``all_gather`` of a ``(columns, points)`` float64 tensor; every rank gets the merged
    columns (for a point, the value of the rank that has a non-NaN one). No-op on one process.
    """
    if not is_distributed():
        return tuple(list(c) for c in columns)
    dev = device()
    local = torch.tensor([list(c) for c in columns], dtype=torch.float64, device=dev)
    parts = [torch.empty_like(local) for _ in range(world_size())]
    CALLS["all_gather"] += 1
    dist.all_gather(parts, local)
    merged = local.clone()
    for p in parts:
        fill = torch.isnan(merged) & ~torch.isnan(p)
        merged[fill] = p[fill]
    return tuple(row.cpu().tolist() for row in merged)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (pickled; small objects only)."""
    if not is_distributed():
        return obj
    box = [obj]
    CALLS["broadcast"] += 1
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


# -- command line --------------------------------------------------------------------------------


class _CliState:
    def __init__(self, started: bool, stdout: Any) -> None:
        self.started, self.stdout = started, stdout


def cli_enter() -> _CliState | None:
    """For ``inspect_kit.cli.main``: join the group when ``WORLD_SIZE > 1``; ranks other than 0
    print nothing to stdout. Returns a token for :func:`cli_exit` (None on one process).

    The commands load models on the CPU, so the group uses Gloo (set
    ``INSPECT_KIT_DIST_BACKEND=nccl`` to force NCCL)."""
    import sys

    if env_world_size() <= 1:
        return None
    # the commands compute on the CPU: Gloo, unless INSPECT_KIT_DIST_BACKEND says otherwise
    backend = os.environ.get("INSPECT_KIT_DIST_BACKEND") or backend_for("cpu")
    started = not is_distributed() and setup(backend=backend)
    state = _CliState(started, None)
    if not is_main():
        state.stdout = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - closed in cli_exit
    return state


def cli_exit(state: _CliState | None) -> None:
    """Undo :func:`cli_enter` (restore stdout, leave the group it joined)."""
    import sys

    if state is None:
        return
    if state.stdout is not None:
        sys.stdout.close()
        sys.stdout = state.stdout
    if state.started:
        teardown()
