r"""Compiler jobs off the caller's thread, and the switch that turns compiled code off.

Compiled loops (:class:`~dynopt.Auto`'s sweeps, :mod:`dynopt.casadi.scan`) are built by gcc in a
daemon thread while the caller keeps working on the NumPy path: nothing waits for a compiler it
did not ask for.  At exit the interpreter waits at most :data:`EXIT_WAIT` seconds for the
``"small"`` builds still running (so that a short script's build lands in the disk cache for the
next run); a longer build is abandoned and starts again next time.  Builds run one at a time per
lane (gcc is CPU-heavy; the machines dynopt targets have few cores): ``"small"`` builds
(a second or less) never queue behind a ``"large"`` one that takes many seconds.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from concurrent.futures import Future

ENV_COMPILE = "DYNOPT_COMPILE"
"""Environment variable: ``0`` keeps dynopt on its NumPy paths (no C compiler is ever run)."""

LANES = {"small": threading.Lock(), "large": threading.Lock()}
"""One lock per lane, held by that lane's running build."""

EXIT_WAIT = 3.0
"""Seconds the interpreter's exit waits, in total, for small builds still running or queued."""

_SMALL = set()  # futures of small builds not finished yet


def _wait_at_exit():
    deadline = time.monotonic() + EXIT_WAIT
    for fut in list(_SMALL):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            fut.result(remaining)
        except BaseException:  # noqa: BLE001 - a failed or unfinished build is simply not cached
            pass


atexit.register(_wait_at_exit)


def _after_fork_in_child():  # a lane's lock held by a parent's build thread would never be released
    for lane in LANES:
        LANES[lane] = threading.Lock()
    _SMALL.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def compile_allowed() -> bool:
    """Whether compiled code may be built or loaded: ``DYNOPT_COMPILE`` is not ``0`` / ``false`` / ``no``."""
    return os.environ.get(ENV_COMPILE, "1").strip().lower() not in ("0", "false", "no", "off")


def submit(fn, lane: str = "large") -> Future:
    """Run ``fn()`` in a daemon thread, after the other builds of its ``lane`` (``"small"`` or
    ``"large"``, :data:`LANES`), and return a Future of its result (its exception, if it raised)."""
    if lane not in LANES:
        raise ValueError(f"lane: expected one of {sorted(LANES)}, got {lane!r}")
    fut: Future = Future()

    def run():
        if not fut.set_running_or_notify_cancel():
            return
        try:
            with LANES[lane]:
                fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)

    if lane == "small":
        _SMALL.add(fut)
        fut.add_done_callback(_SMALL.discard)
    threading.Thread(target=run, name="dynopt-compile", daemon=True).start()
    return fut
