r"""C code generation of CasADi Functions, compiled with the machine's C compiler and cached on disk.

:func:`compile_functions` writes one C file for a group of Functions
(``casadi.CodeGenerator``), compiles it to a shared library and loads every Function back
with ``casadi.external``.  The library is cached under :func:`cache_dir` with a file name
keyed by a SHA-256 (:func:`structure_key`, or the caller's own key) of everything that
changes the generated code: the Functions' serialized graphs or the problem's structure,
dynopt's version, the source of every module that builds the forward and dual graphs
(:data:`GRAPH_MODULES`), CasADi's version, the compiler (path and ``--version``) and its
flags.  A second run (or another process) with the same structure loads it without
recompiling.  When the compiler is not on ``PATH`` it raises :class:`CompilerNotFound`;
callers fall back to CasADi's virtual machine with one :class:`CompilerNotFoundWarning`.

Loading a shared library runs its code in this process, so the cache is protected:

* the cache directory is created with mode 0700;
* before anything is loaded (on POSIX) the directory and the library must be owned by the
  current user and not writable by group or others, the library a regular file (not a
  symlink), and no parent directory may be world-writable without the sticky bit;
  otherwise :class:`UnsafeCacheError` is raised naming the path, the owner and mode found
  and the fix (dynopt refuses rather than silently rebuilding elsewhere);
* each build writes ``<library>.sha256`` (``sha256sum`` format) next to the library; a
  library whose SHA-256 does not match is rebuilt, never loaded;
* builds of one key are serialised by a lock file (``.<name>.lock``, POSIX ``flock``) and
  installed with atomic ``os.replace``, so concurrent processes compile once and load the
  same library.

On platforms without POSIX ownership (Windows) the owner and mode checks are skipped (the
default directory lies in the user's profile, private under Windows' default ACLs; a
``cache_dir`` elsewhere must be protected by the user) and the digest is still verified.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import casadi as ca

ENV_CACHE_DIR = "DYNOPT_CACHE_DIR"
"""Environment variable naming the cache directory (default ``~/.cache/dynopt``)."""

GRAPH_MODULES = ("dynopt.casadi.forms", "dynopt.casadi.compiled", "dynopt.casadi.components",
                 "dynopt.casadi.codegen", "dynopt.casadi.reference", "dynopt.casadi.scan",
                 "dynopt.casadi.sensitivities", "dynopt.casadi.scan_sweeps", "dynopt.casadi.sweep_steps")
"""Modules whose source builds the forward and dual graphs: their text is part of every cache key."""

LOCK_TIMEOUT = 900.0
"""Seconds a build waits for another process building the same key before giving up."""

_POSIX = hasattr(os, "geteuid")
_PREFIX = re.compile(r"^[A-Za-z0-9_]+$")


class CompilerNotFound(RuntimeError):
    """The requested C compiler is not on ``PATH``."""


class NotCached(LookupError):
    """``compile_functions(..., cached_only=True)`` found no verified library to load."""


class CompilerNotFoundWarning(RuntimeWarning):
    """Compiled code was requested but no C compiler was found: CasADi's VM is used instead."""


class UnsafeCacheError(PermissionError):
    """The compiled-code cache (directory or library) could be written by someone else: nothing is loaded."""


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


# --------------------------------------------------------------------------- cache key


@functools.lru_cache(maxsize=None)
def module_source(name: str) -> bytes:
    """The source file of module ``name`` as bytes (read once per process; b"" if it has none)."""
    spec = importlib.util.find_spec(name)
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return b""
    with open(origin, "rb") as fh:
        return fh.read()


@functools.lru_cache(maxsize=None)
def _compiler_version(exe: str) -> str:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else ""


def compiler_identity(compiler: str) -> str:
    """``compiler``, its resolved path and the first line of ``compiler --version`` ("absent" if not on PATH)."""
    exe = shutil.which(compiler)
    if exe is None:
        return f"{compiler}|absent"
    return f"{compiler}|{exe}|{_compiler_version(exe)}"


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """The processor's model and feature flags (``/proc/cpuinfo``; ``platform`` elsewhere): code built
    with ``-march=native`` runs only where these match, so they are part of its cache key."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"
    keep = sorted({ln.split(":", 1)[1].strip() for ln in lines
                   if ln.split(":", 1)[0].strip() in ("model name", "flags", "Features", "CPU part")})
    return platform.machine() + "|" + hashlib.sha256("\n".join(keep).encode()).hexdigest()[:16]


def code_digest(compiler: str, flags: Sequence[str]) -> str:
    """SHA-256 (hex) of what generated code depends on besides the graph itself.

    dynopt's version, the source of every module in :data:`GRAPH_MODULES`, CasADi's version,
    :func:`compiler_identity`, ``flags`` and, for ``-march=native`` builds, :func:`cpu_identity`.  Every cache key starts from it.
    """
    h = hashlib.sha256()
    h.update(repr((importlib.import_module("dynopt").__version__, ca.__version__, compiler_identity(compiler),
                   tuple(flags))).encode())
    if any("native" in f for f in flags):
        h.update(cpu_identity().encode())
    for name in GRAPH_MODULES:
        src = module_source(name)
        h.update(f"{name}:{len(src)}:".encode())
        h.update(src)
    return h.hexdigest()


def structure_key(functions: Sequence[ca.Function], compiler: str, flags: Sequence[str],
                  extra_source: str = "") -> str:
    """SHA-256 (hex, 20 chars) of :func:`code_digest`, the serialized Functions and ``extra_source``."""
    h = hashlib.sha256()
    h.update(code_digest(compiler, flags).encode())
    for f in functions:
        h.update(f.serialize().encode())
    h.update(extra_source.encode())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- ownership and mode


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _refuse(path: Path, problem: str, st: os.stat_result, fix: str) -> UnsafeCacheError:
    return UnsafeCacheError(
        f"dynopt will not load compiled code from {path}: it is {problem} (found owner {_owner(st.st_uid)}, "
        f"mode {stat.filemode(st.st_mode)} = {stat.S_IMODE(st.st_mode):04o}); compiled code is loaded only from a "
        f"cache that you ({_owner(os.geteuid())}) alone can write. Fix: {fix}")


def _other_dir_fix(path: Path) -> str:
    return (f"point ${ENV_CACHE_DIR} (or cache_dir=) at a directory you own that only you can write, e.g. "
            f"~/.cache/dynopt, or remove {path} so that dynopt recreates it with mode 0700")


def check_private(path: os.PathLike, *, kind: str = "file") -> None:
    """Raise :class:`UnsafeCacheError` unless only the current user can write ``path`` (POSIX).

    Parameters
    ----------
    path : path
        An existing directory (``kind="directory"``, symlinks followed) or file (``kind="file"``:
        must be a regular file, not a symlink).
    kind : {"directory", "file"}

    Notes
    -----
    Checks: owned by the effective user; no group or other write bit; for a directory also
    every parent not world-writable unless it has the sticky bit (as ``/tmp``).  Without
    POSIX ownership (Windows) it does nothing.
    """
    if kind not in ("directory", "file"):
        raise ValueError(f"kind: expected 'directory' or 'file', got {kind!r}")
    if not _POSIX:
        return
    path = Path(path)
    me = os.geteuid()
    st = os.stat(path) if kind == "directory" else os.lstat(path)
    if kind == "directory" and not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "not a directory", st, f"point ${ENV_CACHE_DIR} (or cache_dir=) at a directory")
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "not a regular file (a symlink or special file)", st,
                      f"remove it (`dynopt cache clear` or `rm {path}`); dynopt rebuilds it")
    if st.st_uid != me:
        fix = _other_dir_fix(path) if kind == "directory" else f"remove it (`rm {path}`); dynopt rebuilds it"
        raise _refuse(path, "owned by another user", st, fix)
    if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others", stat.S_IWGRP | stat.S_IWOTH: "group and others"}[
            stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)]
        fix = (f"`chmod 700 {path}` (then `dynopt cache clear` if you did not make its contents yourself)"
               if kind == "directory" else f"remove it (`rm {path}`); dynopt rebuilds it")
        raise _refuse(path, f"writable by {who}", st, fix)
    if kind == "directory":
        for parent in Path(os.path.realpath(path)).parents:
            pst = os.stat(parent)
            if pst.st_mode & stat.S_IWOTH and not pst.st_mode & stat.S_ISVTX:
                raise _refuse(parent, f"a parent of the cache directory {path} writable by everyone without the "
                              f"sticky bit (anyone can rename the cache away and put their own in its place)", pst,
                              f"`chmod o-w {parent}` or `chmod +t {parent}`, or " + _other_dir_fix(path))


def private_cache_dir(directory: Optional[os.PathLike] = None, *, create: bool = True) -> Path:
    """The cache directory (see :func:`cache_dir`), created with mode 0700 if absent, and checked.

    Parents that do not exist are created with mode 0700 too.

    Raises
    ------
    UnsafeCacheError
        If the directory could be written by another user (see :func:`check_private`).
    """
    root = cache_dir(directory)
    if create and not root.exists():
        missing = [root] + [p for p in root.parents if not p.exists()]
        for p in reversed(missing):  # the cache and any parent dynopt creates: 0700 whatever the umask
            try:
                os.mkdir(p, 0o700)
            except FileExistsError:  # another process made it first: it is checked below like any other
                continue
            os.chmod(p, 0o700)
    check_private(root, kind="directory")
    return root


# --------------------------------------------------------------------------- library entries


def sha256_file(path: os.PathLike) -> str:
    """SHA-256 (hex) of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest_path(lib: Path) -> Path:
    return lib.with_name(lib.name + ".sha256")


def verified(lib: Path) -> Optional[str]:
    """The SHA-256 of ``lib`` if it exists and matches its ``.sha256`` record, else ``None``.

    Raises :class:`UnsafeCacheError` if the library or its record could be written by another user.
    """
    rec = _digest_path(lib)
    if not lib.exists() and not lib.is_symlink():
        return None
    check_private(lib, kind="file")
    if not rec.exists() and not rec.is_symlink():
        return None
    check_private(rec, kind="file")
    want = rec.read_text(errors="replace").split()
    got = sha256_file(lib)
    return got if want and want[0] == got else None


def _load(names: Optional[Sequence[str]], lib: Path):
    """Load ``names`` from the (verified) library ``lib`` as CasADi Functions or, with ``names=None``,
    the library itself through ``ctypes`` (:mod:`.scan` calls its driver loop that way)."""
    if names is None:
        return ctypes.CDLL(str(lib))
    return {n: ca.external(n, str(lib)) for n in names}


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValueError(f"prefix: expected letters, digits and underscores, got {prefix!r}")


def load_cached(names: Sequence[str], *, prefix: str, key: str, directory: Optional[os.PathLike] = None):
    """The Functions ``names`` from the cached library ``prefix_key.so``, or ``None``.

    ``None`` when the library is absent or its SHA-256 does not match its record (then
    :func:`compile_functions` rebuilds it).  Raises :class:`UnsafeCacheError` (see
    :func:`check_private`) before loading anything from a cache others could write.
    """
    _check_prefix(prefix)
    lib = private_cache_dir(directory) / f"{prefix}_{key}.so"
    if verified(lib) is None:
        return None
    return _load(names, lib)


STALE_BUILD = 3600.0
"""Seconds after which a ``.build-*`` directory is an abandoned build (its process ended mid-build)."""


def _remove_stale_builds(root: Path) -> None:
    """Remove ``.build-*`` directories older than :data:`STALE_BUILD` (left by processes that exited
    while compiling); live builds are younger."""
    now = time.time()
    for p in root.glob(".build-*"):
        try:
            if p.is_dir() and not p.is_symlink() and now - p.stat().st_mtime > STALE_BUILD:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


class _Lock:
    """An exclusive ``flock`` on ``path`` (no-op where ``fcntl`` is missing), waiting at most ``timeout`` s."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: concurrent builds both compile; atomic replace + digest keep it safe
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"waited {self.timeout:.0f} s for another process building {self.path.name}; "
                                       f"if none is running, delete {self.path}")
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


def compile_functions(functions: Sequence[ca.Function], *, prefix: str, compiler: str = "gcc",
                      flags: Sequence[str] = ("-O2",), directory: Optional[os.PathLike] = None,
                      key: Optional[str] = None, extra_source: str = "", as_library: bool = False,
                      cached_only: bool = False):
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
        Cache directory (see :func:`cache_dir`); created with mode 0700.
    key : str, optional
        Cache key; default :func:`structure_key` of the Functions (a caller that can describe
        the structure without building the graph passes its own key, see :func:`load_cached`;
        it must start from :func:`code_digest`).
    extra_source : str
        C code appended to the generated file (e.g. :mod:`.scan`'s driver loop, which calls the
        generated Functions by name); part of the default key.
    as_library : bool
        Return the verified library loaded through ``ctypes`` instead of the Functions.
    cached_only : bool
        Load the library if it is in the cache (verified), else raise :class:`NotCached` without
        compiling (a caller that builds in the background first tries this cheap load).

    Returns
    -------
    loaded : dict of name -> casadi.Function, or ctypes.CDLL
        The compiled Functions (``casadi.external``), or the library (``as_library``).
    info : CompileInfo

    Raises
    ------
    UnsafeCacheError
        If the cache directory or library could be written by another user (nothing is loaded).
    CompilerNotFound
        If ``compiler`` is not on ``PATH`` and the library is not cached already.
    RuntimeError
        If the compiler fails (its output is in the message).
    NotCached
        With ``cached_only``, if the library is not in the cache.
    """
    _check_prefix(prefix)
    flags = tuple(flags)
    root = private_cache_dir(directory)
    key = key or structure_key(functions, compiler, flags, extra_source)
    lib = root / f"{prefix}_{key}.so"
    names = None if as_library else [f.name() for f in functions]
    if verified(lib) is not None:
        return _load(names, lib), CompileInfo(lib, True, 0.0, 0.0)
    if cached_only:
        raise NotCached(f"{lib.name} is not in the cache {root}")
    exe = shutil.which(compiler)
    if exe is None:
        raise CompilerNotFound(f"C compiler {compiler!r} not found on PATH")
    _remove_stale_builds(root)
    with _Lock(root / f".{lib.name}.lock", LOCK_TIMEOUT):
        if verified(lib) is not None:  # another process built it while we waited
            return _load(names, lib), CompileInfo(lib, True, 0.0, 0.0)
        with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
            t0 = time.perf_counter()
            cname = f"{prefix}_{key}.c"
            cg = ca.CodeGenerator(cname, {"with_header": False})
            for f in functions:
                cg.add(f)
            cg.generate(tmp + os.sep)
            if extra_source:
                with open(Path(tmp) / cname, "a") as fh:
                    fh.write("\n" + extra_source)
            t1 = time.perf_counter()
            out = Path(tmp) / lib.name
            proc = subprocess.run([exe, "-shared", "-fPIC", *flags, "-o", str(out), str(Path(tmp) / cname), "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{compiler} failed on the generated code ({proc.returncode}):\n"
                                   f"{proc.stderr[-2000:]}")
            os.chmod(out, 0o700)
            digest = sha256_file(out)
            rec = Path(tmp) / _digest_path(lib).name
            rec.write_text(f"{digest}  {lib.name}\n")
            os.chmod(rec, 0o600)
            # Record first, then library, each with an atomic replace: a reader that sees one
            # without the other finds a mismatch, waits on the lock and then sees both.
            os.replace(rec, _digest_path(lib))
            os.replace(out, lib)
            t2 = time.perf_counter()
        if verified(lib) != digest:
            raise RuntimeError(f"{lib} changed while it was being installed; nothing was loaded")
        loaded = _load(names, lib)
    return loaded, CompileInfo(lib, False, t1 - t0, t2 - t1)


# --------------------------------------------------------------------------- info and clear


@dataclass
class CacheInfo:
    """What :func:`cache_info` found.

    Attributes
    ----------
    path : Path
        The cache directory.
    exists : bool
    size : int
        Bytes in the libraries and their records.
    entries : int
        Compiled libraries (``*.so``).
    verified : int
        Libraries whose SHA-256 matches their record.
    problems : list of str
        Every failed check (directory or library writable by others, digest mismatch).
    """

    path: Path
    exists: bool
    size: int = 0
    entries: int = 0
    verified: int = 0
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All checks passed."""
        return not self.problems


def cache_info(directory: Optional[os.PathLike] = None) -> CacheInfo:
    """Inspect the cache without loading or creating anything (see :func:`check_private`)."""
    root = cache_dir(directory)
    if not root.exists():
        return CacheInfo(root, False)
    info = CacheInfo(root, True)
    try:
        check_private(root, kind="directory")
    except UnsafeCacheError as exc:
        info.problems.append(str(exc))
    for p in sorted(root.iterdir()):
        if p.name.endswith(".so") or p.name.endswith(".so.sha256"):
            info.size += p.lstat().st_size
        if not p.name.endswith(".so"):
            continue
        info.entries += 1
        try:
            ok = verified(p) is not None
        except (UnsafeCacheError, OSError) as exc:
            info.problems.append(str(exc))
            continue
        if ok:
            info.verified += 1
        else:
            info.problems.append(f"{p.name}: SHA-256 does not match {p.name}.sha256 (it will be rebuilt, never loaded)")
    return info


def clear_cache(directory: Optional[os.PathLike] = None) -> int:
    """Remove dynopt's compiled libraries, their records, locks and leftover builds; return files removed.

    Only names dynopt writes are removed (``*.so``, ``*.so.sha256``, ``.*.so.lock``,
    ``.build-*``); the directory itself stays.
    """
    root = cache_dir(directory)
    if not root.exists():
        return 0
    removed = 0
    for p in root.iterdir():
        if p.name.startswith(".build-") and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            removed += 1
        elif (p.name.endswith((".so", ".so.sha256")) or (p.name.startswith(".") and p.name.endswith(".so.lock"))) \
                and (p.is_file() or p.is_symlink()):
            p.unlink()
            removed += 1
    return removed
