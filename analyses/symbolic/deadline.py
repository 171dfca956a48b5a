"""Time limits for symbolic steps: run a call with a deadline, fall back when it is exceeded.

sympy's ``expand``, ``simplify``, ``count_ops``, printing and ``lambdify`` are unbounded: on a
large composed formula (a FastKAN with LayerNorm composes every node into every edge's input) a
single ``expand`` ran for more than 12 minutes. :func:`call` bounds any such step.

**What is counted.** ``seconds`` is a budget of *CPU* seconds of the calling thread
(``time.thread_time``), with a wall-clock cap of ``WALL_FACTOR * seconds``. CPU time makes the
result of a search that is cut short the same on an idle and on a loaded machine (with wall
time, two other processes on two cores turned exact formulas into fallbacks); the cap still
bounds a call that waits (sleeps, blocks on I/O) instead of computing, and bounds the wall time
a user waits to ``WALL_FACTOR`` times the budget on a machine loaded that much.

* in the main thread of a POSIX process, an interval timer (``setitimer(ITIMER_REAL)``) checks
  both clocks, raises :class:`Expired` in the running code at the deadline and again every
  50 ms until the call has returned (so an ``except`` in library code cannot swallow it for
  good; a tick that lands in a finaliser is skipped, as an exception there is lost);
  :class:`Expired` derives from ``BaseException`` for the same reason. Deadlines nest: an inner
  call never outlives an outer one, and the outer timer is restored afterwards;
* elsewhere (another thread, or ``SIGALRM`` already owned by someone else, e.g. a test timeout
  plugin), the call runs in a forked child process that is terminated when its CPU time (read
  from ``/proc`` where there is one) or the wall cap runs out; its result comes back pickled;
* where neither is available (no ``fork``, e.g. Windows) the call runs without a limit.

A step that times out (or raises) returns ``fallback`` (or raises :class:`Expired` when no
fallback is given); the caller records what happened.

>>> import time
>>> call(lambda: 6 * 7, seconds=1.0)
42
>>> call(lambda: time.sleep(0.3) or "waited", seconds=0.2)  # waiting is not computing
'waited'
>>> call(lambda: time.sleep(5) or "late", seconds=0.2, fallback="fallback")  # the wall cap
'fallback'
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

_RAISE = object()
WALL_FACTOR = 4.0  # the wall-clock cap of a call, in multiples of its CPU budget
_STACK: list[tuple[float, float]] = []  # (thread CPU, monotonic) deadlines of active timer calls
_REPEAT = 0.05


class Expired(BaseException):
    """Raised inside a call that passed its deadline (a BaseException so that library code's
    ``except Exception`` does not swallow it)."""


def _in_finaliser(frame: Any) -> bool:
    """Whether ``frame`` runs inside a finaliser (``__del__``, a ``weakref`` callback, a
    ``gc.callbacks`` function such as hypothesis's) or an unraisable-exception hook: an
    exception raised there cannot reach the call, Python prints it as "ignored" (pytest fails
    the test), so the handler waits for the next tick."""
    gc_codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or "unraisable" in code.co_name \
                or code.co_filename.endswith("weakref.py") or code in gc_codes:
            return True
        frame = frame.f_back
    return False


def _passed() -> bool:
    """Whether any active deadline has passed, on either clock."""
    cpu, wall = time.thread_time(), time.monotonic()
    return any(cpu >= c - 1e-3 or wall >= w - 1e-3 for c, w in _STACK)


def _left() -> float:
    """Wall seconds until the earliest moment a deadline could pass (the thread's CPU clock
    runs no faster than the wall clock)."""
    cpu, wall = time.thread_time(), time.monotonic()
    return min(min(c - cpu, w - wall) for c, w in _STACK)


def _handler(signum: int, frame: Any) -> None:
    if not _STACK:
        return
    if _passed():
        if not _in_finaliser(frame):
            raise Expired("deadline exceeded")
        return  # the repeating tick comes back in 50 ms
    _arm()  # waited or was descheduled: look again when the CPU budget could be spent


def _arm() -> None:
    if not _STACK:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    signal.setitimer(signal.ITIMER_REAL, max(_left(), 1e-3), _REPEAT)


def _can_use_timer() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGALRM)
    return current in (signal.SIG_DFL, signal.SIG_IGN, None, _handler)


def _with_timer(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    previous = signal.getsignal(signal.SIGALRM)
    signal.signal(signal.SIGALRM, _handler)
    _STACK.append((time.thread_time() + seconds, time.monotonic() + WALL_FACTOR * seconds))
    try:
        _arm()
        return fn(*args, **kwargs)
    finally:
        _STACK.pop()
        _arm()
        if not _STACK:
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def _child(fn: Callable[..., Any], args: tuple, kwargs: dict, conn: Any) -> None:
    try:
        payload = pickle.dumps(("ok", fn(*args, **kwargs)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
    conn.send_bytes(payload)
    conn.close()


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from ``/proc``; None where there is
    no ``/proc`` or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _with_fork(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, kwargs, child), daemon=True)
    proc.start()
    child.close()
    wall_end = time.monotonic() + WALL_FACTOR * seconds
    try:
        while not parent.poll(min(_REPEAT * 2, max(wall_end - time.monotonic(), 0.0))):
            used = _cpu_seconds(proc.pid)
            if time.monotonic() >= wall_end or (used is not None and used >= seconds):
                raise Expired("deadline exceeded")
        status, value = pickle.loads(parent.recv_bytes())
    except EOFError as exc:
        raise Expired("the worker process ended without a result") from exc
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(1)
        parent.close()
    if status != "ok":
        raise RuntimeError(value)
    return value


def mode() -> str:
    """How :func:`call` would bound a call made here: ``"timer"``, ``"fork"`` or ``"none"``."""
    if _can_use_timer():
        return "timer"
    return "fork" if "fork" in mp.get_all_start_methods() and os.name == "posix" else "none"


def call(fn: Callable[..., Any], *args: Any, seconds: float | None, fallback: Any = _RAISE,
         **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` if it returns within ``seconds`` CPU seconds (and
    ``WALL_FACTOR * seconds`` wall seconds); else ``fallback`` (or raise :class:`Expired` when
    no fallback is given). ``seconds=None`` means no limit. With a fallback, an ordinary
    exception from ``fn`` also yields the fallback. An enclosing call's deadline stays in force
    (the timer checks every active deadline)."""
    if seconds is None:
        return fn(*args, **kwargs)
    how = mode()
    try:
        if how == "timer":
            return _with_timer(fn, float(seconds), args, kwargs)
        if how == "fork":
            return _with_fork(fn, float(seconds), args, kwargs)
        return fn(*args, **kwargs)
    except Expired:
        if fallback is _RAISE or (_STACK and _passed()):
            raise  # no fallback, or an enclosing deadline has passed too: let it unwind
        return fallback
    except Exception:
        if fallback is _RAISE:
            raise
        return fallback


__all__ = ["WALL_FACTOR", "Expired", "call", "mode"]
