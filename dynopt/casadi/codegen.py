r"""C code generation of CasADi Functions, compiled with the machine's C compiler and cached on disk.

:func:`compile_functions` writes one C file for a group of Functions
(``casadi.CodeGenerator``), compiles it to a shared library and loads every Function back
with ``casadi.external``.  The library is cached under :func:`cache_dir` with a file name
keyed by a SHA-256 of the Functions' serialized graphs (which encode the problem's
structure: sizes, horizon, batch, constants), the compiler, its flags and the CasADi
version, so a second run (or another process) with the same structure loads it without
recompiling.  When the compiler is not on ``PATH`` it raises :class:`CompilerNotFound`;
callers fall back to CasADi's virtual machine with one :class:`CompilerNotFoundWarning`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import casadi as ca

ENV_CACHE_DIR = "DYNOPT_CACHE_DIR"
"""Environment variable naming the cache directory (default ``~/.cache/dynopt``)."""


class CompilerNotFound(RuntimeError):
    """The requested C compiler is not on ``PATH``."""


class CompilerNotFoundWarning(RuntimeWarning):
    """Compiled code was requested but no C compiler was found: CasADi's VM is used instead."""


def cache_dir(path: Optional[os.PathLike] = None) -> Path:
    """The cache directory: ``path`` if given, else ``$DYNOPT_CACHE_DIR``, else ``~/.cache/dynopt``."""
    if path is None:
        path = os.environ.get(ENV_CACHE_DIR) or Path.home() / ".cache" / "dynopt"
    return Path(path).expanduser()


@dataclass
class CompileInfo:
    """What :func:`compile_functions` did: the library path, whether it came from the cache,
    and the seconds spent generating C and running the compiler (0 when cached)."""

    library: Path
    cached: bool
    generate_seconds: float
    compile_seconds: float


def structure_key(functions: Sequence[ca.Function], compiler: str, flags: Sequence[str]) -> str:
    """SHA-256 (hex, 20 chars) of the serialized Functions, compiler, flags and CasADi version."""
    h = hashlib.sha256()
    h.update(ca.__version__.encode())
    h.update(compiler.encode())
    h.update(" ".join(flags).encode())
    for f in functions:
        h.update(f.serialize().encode())
    return h.hexdigest()[:20]


def load_cached(names: Sequence[str], *, prefix: str, key: str, directory: Optional[os.PathLike] = None):
    """The Functions ``names`` from the cached library ``prefix_key.so``, or ``None`` if absent."""
    lib = cache_dir(directory) / f"{prefix}_{key}.so"
    if not lib.exists():
        return None
    return {n: ca.external(n, str(lib)) for n in names}


def compile_functions(functions: Sequence[ca.Function], *, prefix: str, compiler: str = "gcc",
                      flags: Sequence[str] = ("-O2",), directory: Optional[os.PathLike] = None,
                      key: Optional[str] = None):
    """Generate, compile (or load from the cache) and load a group of CasADi Functions.

    Parameters
    ----------
    functions : sequence of casadi.Function
        Distinct names.
    prefix : str
        File name prefix (letters, digits, underscores).
    compiler : str
        Executable looked up on ``PATH``.
    flags : sequence of str
        Optimisation flags passed to the compiler.
    directory : path, optional
        Cache directory (see :func:`cache_dir`).
    key : str, optional
        Cache key; default :func:`structure_key` of the Functions (a caller that can describe
        the structure without building the graph passes its own key, see :func:`load_cached`).

    Returns
    -------
    loaded : dict of name -> casadi.Function
        The compiled Functions (``casadi.external``).
    info : CompileInfo

    Raises
    ------
    CompilerNotFound
        If ``compiler`` is not on ``PATH`` and the library is not cached already.
    RuntimeError
        If the compiler fails (its output is in the message).
    """
    flags = tuple(flags)
    root = cache_dir(directory)
    key = key or structure_key(functions, compiler, flags)
    lib = root / f"{prefix}_{key}.so"
    names = [f.name() for f in functions]
    if lib.exists():
        return {n: ca.external(n, str(lib)) for n in names}, CompileInfo(lib, True, 0.0, 0.0)
    exe = shutil.which(compiler)
    if exe is None:
        raise CompilerNotFound(f"C compiler {compiler!r} not found on PATH")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        t0 = time.perf_counter()
        cname = f"{prefix}_{key}.c"
        cg = ca.CodeGenerator(cname, {"with_header": False})
        for f in functions:
            cg.add(f)
        cg.generate(tmp + os.sep)
        t1 = time.perf_counter()
        out = Path(tmp) / (lib.name + ".part")
        proc = subprocess.run([exe, "-shared", "-fPIC", *flags, "-o", str(out), str(Path(tmp) / cname), "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{compiler} failed on the generated code ({proc.returncode}):\n{proc.stderr[-2000:]}")
        os.replace(out, lib)  # atomic: concurrent runs never load a half-written library
        t2 = time.perf_counter()
    loaded: Dict[str, ca.Function] = {n: ca.external(n, str(lib)) for n in names}
    return loaded, CompileInfo(lib, False, t1 - t0, t2 - t1)
