"""Saving results without ever overwriting what a user already has."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict

import numpy as np


def free_stem(directory: Path, stem: str, suffixes) -> str:
    """Return ``stem`` or ``stem-1``, ``stem-2``, ... such that no ``stem + suffix`` exists."""
    candidate, i = stem, 0
    while any((directory / f"{candidate}{s}").exists() for s in suffixes):
        i += 1
        candidate = f"{stem}-{i}"
    return candidate


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, failing with ``FileExistsError`` rather than overwriting."""
    with open(path, "xb") as fh:
        fh.write(data)


def save_result(directory, stem: str, arrays: Dict[str, np.ndarray], metadata: dict) -> Dict[str, Path]:
    """Save arrays (``.npz``) and metadata (``.json``) under a fresh name in ``directory``.

    Parameters
    ----------
    directory : path-like
        Created if missing.
    stem : str
        Base file name; ``-1``, ``-2``, ... is appended when files of that name exist.
    arrays : dict of str -> ndarray
    metadata : dict
        JSON-serialisable.

    Returns
    -------
    dict with keys ``"npz"`` and ``"json"`` mapping to the written paths.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = free_stem(directory, stem, (".npz", ".json", ".png"))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    paths = {"npz": directory / f"{stem}.npz", "json": directory / f"{stem}.json"}
    write_new(paths["npz"], buf.getvalue())
    write_new(paths["json"], json.dumps(metadata, indent=2, sort_keys=True).encode())
    return paths
