"""Saving results without ever overwriting what a user already has."""

from __future__ import annotations

import io
import json
import os
import tempfile
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


def check_writable(directory, name: str = "out") -> Path:
    """Make sure results can be written to ``directory`` *before* any work is done.

    Creates ``directory`` (and its parents) if missing, then creates and removes a temporary
    file in it.

    Parameters
    ----------
    directory : path-like
    name : str
        The argument's name in error messages (e.g. ``"--out"``).

    Returns
    -------
    Path
        ``directory`` as a Path.

    Raises
    ------
    TypeError
        ``directory`` is not a path.
    ValueError
        ``directory`` exists and is not a directory.
    PermissionError
        It (or a parent) cannot be created, or no file can be written in it; the message
        names the argument, the directory and the reason.
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a directory path, got {type(directory).__name__} {directory!r}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{name}: expected a directory, got {str(directory)!r}, which exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dynopt-write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"{name}: cannot write results to {str(directory)!r} ({type(exc).__name__}: "
                              f"{exc.strerror or exc}); choose a writable directory before training") from exc
    return directory


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
