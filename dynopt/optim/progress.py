"""Progress of :func:`dynopt.optimize`: a tqdm bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time

import numpy as np

PROGRESS_INTERVAL = 10.0
"""Seconds between plain progress lines when ``progress=True`` and stderr is not a terminal."""


class _Progress:
    """A tqdm bar on a terminal (or in a notebook); otherwise plain lines on stderr every
    ``interval`` seconds (first and last iteration always)."""

    def __init__(self, label: str, total, interval: float):
        self.label, self.interval = label, interval
        self.bar = None
        self.last_line = -np.inf
        self.nit = 0
        self.J = self.gn = float("nan")
        self.path = None
        stream = sys.stderr
        interactive = bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules
        if interactive:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc=label, unit="it")
            except ImportError:  # plain lines then
                self.bar = None
        self.t0 = time.monotonic()

    def line(self, note=""):
        el = time.monotonic() - self.t0
        path = f"  path={self.path}" if self.path else ""
        print(f"{self.label}: it {self.nit}  J={self.J:.6g}  |grad|={self.gn:.3g}{path}  {el:.1f}s{note}",
              file=sys.stderr, flush=True)
        self.last_line = time.monotonic()

    def update(self, nit, J, gn, *, step=True, path=None):
        self.nit, self.J, self.gn, self.path = nit, J, gn, path
        if self.bar is not None:
            if step:
                self.bar.update(1)
            extra = {"path": path} if path else {}
            self.bar.set_postfix(J=f"{J:.6g}", grad=f"{gn:.3g}", **extra)
        elif nit == 0 or time.monotonic() - self.last_line >= self.interval:
            self.line()

    def note(self, text):
        if self.bar is not None:
            self.bar.set_description(f"{self.label} {text}")
        else:
            self.line(f"  ({text})")

    def close(self, message=""):
        if self.bar is not None:
            self.bar.close()
        else:
            self.line(f"  done: {message}" if message else "  done")
