"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import gc
import time

import numpy as np


def median_times(funcs, rounds):
    """Interleave the calls round by round (garbage collector off); return the median seconds of each."""
    times = {k: [] for k in funcs}
    gc.disable()
    try:
        for _ in range(rounds):
            for k, f in funcs.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return {k: float(np.median(v)) for k, v in times.items()}
