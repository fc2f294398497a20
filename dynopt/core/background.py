r"""Compiler jobs off the caller's thread, and the switch that turns compiled code off.

Compiled loops (:class:`~dynopt.Auto`'s sweeps, :mod:`dynopt.casadi.scan`) are built by gcc in a
daemon thread while the caller keeps working on the NumPy path: nothing ever waits for a
compiler it did not ask for, and a script that ends does not wait for a build.  Builds run one at
a time per lane (gcc is CPU-heavy; the machines dynopt targets have few cores): ``"small"`` builds
(a second or less) never queue behind a ``"large"`` one that takes many seconds.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future

ENV_COMPILE = "DYNOPT_COMPILE"
"""Environment variable: ``0`` keeps dynopt on its NumPy paths (no C compiler is ever run)."""

LANES = {"small": threading.Lock(), "large": threading.Lock()}
"""One lock per lane, held by that lane's running build."""


def compile_allowed() -> bool:
    """Whether compiled code may be built or loaded: ``DYNOPT_COMPILE`` is not ``0`` / ``false`` / ``no``."""
    return os.environ.get(ENV_COMPILE, "1").strip().lower() not in ("0", "false", "no", "off")


def submit(fn, lane: str = "large") -> Future:
    """Run ``fn()`` in a daemon thread, after the other builds of its ``lane`` (``"small"`` or
    ``"large"``, :data:`LANES`), and return a Future of its result (its exception, if it raised)."""
    if lane not in LANES:
        raise ValueError(f"lane: expected one of {sorted(LANES)}, got {lane!r}")
    lock = LANES[lane]
    fut: Future = Future()

    def run():
        if not fut.set_running_or_notify_cancel():
            return
        try:
            with lock:
                fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)

    threading.Thread(target=run, name="dynopt-compile", daemon=True).start()
    return fut
