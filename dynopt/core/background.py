r"""Compiler jobs off the caller's thread, and the switch that turns compiled code off.

Compiled loops (:class:`~dynopt.Auto`'s sweeps, :mod:`dynopt.casadi.scan`) are built by gcc in a
daemon thread while the caller keeps working on the NumPy path: nothing ever waits for a
compiler it did not ask for, and a script that ends does not wait for a build.  One build runs at
a time (gcc is CPU-heavy; the machines dynopt targets have few cores).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future

ENV_COMPILE = "DYNOPT_COMPILE"
"""Environment variable: ``0`` keeps dynopt on its NumPy paths (no C compiler is ever run)."""

BUILD_LOCK = threading.Lock()
"""Held by the background build that is running."""


def compile_allowed() -> bool:
    """Whether compiled code may be built or loaded: ``DYNOPT_COMPILE`` is not ``0`` / ``false`` / ``no``."""
    return os.environ.get(ENV_COMPILE, "1").strip().lower() not in ("0", "false", "no", "off")


def submit(fn) -> Future:
    """Run ``fn()`` in a daemon thread, after any other build (:data:`BUILD_LOCK`), and return a
    Future of its result (its exception, if it raised)."""
    fut: Future = Future()

    def run():
        if not fut.set_running_or_notify_cancel():
            return
        try:
            with BUILD_LOCK:
                fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)

    threading.Thread(target=run, name="dynopt-compile", daemon=True).start()
    return fut
