"""Time limits for symbolic steps: run a call with a deadline, fall back when it is exceeded.

sympy's ``expand``, ``simplify``, ``count_ops``, printing and ``lambdify`` are unbounded: on a
large composed formula (a FastKAN with LayerNorm composes every node into every edge's input) a
single ``expand`` ran for more than 12 minutes. :func:`call` bounds any such step:

* in the main thread of a POSIX process, an interval timer (``setitimer(ITIMER_REAL)``) raises
  :class:`Expired` in the running code at the deadline and again every 50 ms until the call has
  returned (so an ``except`` in library code cannot swallow it for good; a tick that lands in
  a finaliser is skipped, as an exception there is lost); :class:`Expired` derives from
  ``BaseException`` for the same reason. Deadlines nest: an inner call never
  outlives an outer one, and the outer timer is restored afterwards;
* elsewhere (another thread, or ``SIGALRM`` already owned by someone else, e.g. a test timeout
  plugin), the call runs in a forked child process that is terminated at the deadline; its
  result comes back pickled;
* where neither is available (no ``fork``, e.g. Windows) the call runs without a limit.

A step that times out (or raises) returns ``fallback`` (or raises :class:`Expired` when no
fallback is given); the caller records what happened.

>>> import time
>>> call(lambda: 6 * 7, seconds=1.0)
42
>>> call(lambda: time.sleep(5) or "late", seconds=0.2, fallback="fallback")
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
_STACK: list[float] = []  # absolute deadlines (time.monotonic()) of the active timer calls
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


def _handler(signum: int, frame: Any) -> None:
    if _STACK and time.monotonic() >= min(_STACK) - 1e-3 and not _in_finaliser(frame):
        raise Expired("deadline exceeded")


def _arm() -> None:
    if not _STACK:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    left = max(min(_STACK) - time.monotonic(), 1e-3)
    signal.setitimer(signal.ITIMER_REAL, left, _REPEAT)


def _can_use_timer() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGALRM)
    return current in (signal.SIG_DFL, signal.SIG_IGN, None, _handler)


def _with_timer(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    previous = signal.getsignal(signal.SIGALRM)
    signal.signal(signal.SIGALRM, _handler)
    _STACK.append(time.monotonic() + seconds)
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


def _with_fork(fn: Callable[..., Any], seconds: float, args: tuple, kwargs: dict) -> Any:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, kwargs, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(seconds):
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
    """``fn(*args, **kwargs)`` if it returns within ``seconds``; else ``fallback`` (or raise
    :class:`Expired` when no fallback is given). ``seconds=None`` means no limit. With a
    fallback, an ordinary exception from ``fn`` also yields the fallback."""
    if seconds is None:
        return fn(*args, **kwargs)
    if _STACK:  # never outlive an enclosing deadline
        seconds = min(seconds, max(min(_STACK) - time.monotonic(), 1e-3))
    how = mode()
    try:
        if how == "timer":
            return _with_timer(fn, float(seconds), args, kwargs)
        if how == "fork":
            return _with_fork(fn, float(seconds), args, kwargs)
        return fn(*args, **kwargs)
    except Expired:
        if fallback is _RAISE or (_STACK and time.monotonic() >= min(_STACK)):
            raise  # no fallback, or an enclosing deadline has passed too: let it unwind
        return fallback
    except Exception:
        if fallback is _RAISE:
            raise
        return fallback


__all__ = ["Expired", "call", "mode"]
