"""The compiled-code cache loads only libraries that the user alone could have written (issue 15).

The tests run the tower form of the compiled sweeps (one library per structure); the compiled
scans (two libraries, loaded through ctypes) go through the same cache functions and have their own
tampering test at the end.

Loading a shared library runs its code, so: the cache directory is created 0700; a directory
or library that someone else owns or can write is refused before anything is loaded, with a
message naming the path, the owner and mode found and the fix; a library whose SHA-256 does
not match its record is rebuilt, never loaded; the key changes with the source of the module
that derives the duals; two processes building one key both load the same library.

Numbers are checked against the Python-loop BPTT of the same problem (1e-12 relative, the
bar of tests/test_casadi_compiled.py); digests against hashlib on the file's bytes.
"""

import hashlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dynopt.casadi import codegen
from dynopt.casadi.codegen import UnsafeCacheError, cache_info, clear_cache, private_cache_dir
from dynopt.casadi.compiled import DEFAULT_FLAGS, CompiledBPTT, sweep_key
from dynopt.casadi.forms import batched_pair

posix = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="ownership and mode checks are POSIX-only")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH")
RTOL = 1e-12
PROBLEM_SRC = """
import numpy as np
from dynopt import Euler, Discretized, Problem
from dynopt.models import DoubleIntegrator, OpenLoop, Quadratic, QuadraticTerminal

def open_loop(T):
    return Problem(Discretized(DoubleIntegrator(), Euler(0.1)), OpenLoop(2, 1, horizon=T, U0=np.sin(np.arange(T))),
                   Quadratic([1.0, 0.1], [0.01]), QuadraticTerminal(np.eye(2)), horizon=T,
                   x0=[[1.0, 0.0], [0.0, 1.0]], decision=("policy", "x0"))


def build_record(method, problem):
    # what CompiledBPTT's build of the problem did: build(problem).record, formerly method.last_build
    record = getattr(method.build(problem), "record", None)
    return record if record is not None else method.last_build
"""

namespace = {}
exec(PROBLEM_SRC, namespace)
open_loop, build_record = namespace["open_loop"], namespace["build_record"]


def _key(problem):
    return sweep_key(problem, chunk=None, compiler="gcc", flags=DEFAULT_FLAGS)


def _plant(directory, problem, payload=b"\x7fELF planted by someone else"):
    """Put a 'library' for ``problem``'s key into ``directory`` with a matching SHA-256 record."""
    lib = Path(directory) / f"dynopt_sweeps_{_key(problem)}.so"
    lib.write_bytes(payload)
    Path(str(lib) + ".sha256").write_text(hashlib.sha256(payload).hexdigest() + "  " + lib.name + "\n")
    os.chmod(lib, 0o600)
    os.chmod(str(lib) + ".sha256", 0o600)
    return lib


@pytest.fixture
def loads(monkeypatch):
    """Every library handed to casadi.external, with the SHA-256 of its bytes at that moment."""
    seen = []
    real = codegen._load

    def spy(names, lib):
        seen.append((Path(lib), codegen.sha256_file(lib)))
        return real(names, lib)

    monkeypatch.setattr(codegen, "_load", spy)
    return seen


def test_cache_dir_is_created_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        root = private_cache_dir(tmp_path / "new" / "cache")
    finally:
        os.umask(old)
    assert root == tmp_path / "new" / "cache"
    if hasattr(os, "geteuid"):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@posix
@pytest.mark.parametrize("mode, who", [(0o777, "group and others"), (0o770, "group"), (0o703, "others")])
def test_writable_cache_dir_is_refused_before_loading(tmp_path, loads, mode, who):
    shared = tmp_path / "shared"
    shared.mkdir()
    problem = open_loop(8)
    planted = _plant(shared, problem)  # a valid record does not help: the directory is not private
    os.chmod(shared, mode)
    with pytest.raises(UnsafeCacheError) as err:
        CompiledBPTT(codegen=True, cache_dir=shared, loop="tower").evaluate(problem, problem.W0)
    msg = str(err.value)
    assert f"{shared}:" in msg and f"writable by {who}" in msg
    assert f"mode {stat.filemode(stat.S_IFDIR | mode)} = {mode:04o}" in msg and "found owner" in msg
    assert f"chmod 700 {shared}" in msg
    assert loads == [] and planted.read_bytes().startswith(b"\x7fELF planted")
    assert isinstance(err.value, PermissionError)
    assert str(pickle.loads(pickle.dumps(err.value))) == msg  # crosses process pools intact


@posix
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root")
def test_cache_dir_owned_by_another_user_is_refused(tmp_path, loads):
    import pwd

    nobody = pwd.getpwnam("nobody")
    other = tmp_path / "theirs"
    other.mkdir(mode=0o700)
    problem = open_loop(8)
    _plant(other, problem)
    os.chown(other, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(UnsafeCacheError) as err:
        CompiledBPTT(codegen=True, cache_dir=other, loop="tower").evaluate(problem, problem.W0)
    msg = str(err.value)
    assert f"{other}: it is owned by another user" in msg
    assert f"found owner nobody (uid {nobody.pw_uid})" in msg and "mode drwx------ = 0700" in msg
    assert "DYNOPT_CACHE_DIR" in msg and "directory you own" in msg
    assert loads == []


@posix
def test_library_writable_by_others_or_symlinked_is_refused(tmp_path, loads):
    root = private_cache_dir(tmp_path / "c")
    problem = open_loop(8)
    lib = _plant(root, problem)
    os.chmod(lib, 0o666)
    with pytest.raises(UnsafeCacheError, match=r"writable by group and others .*mode -rw-rw-rw- = 0666"):
        codegen.load_cached(["dynopt_grad"], prefix="dynopt_sweeps", key=_key(problem), directory=root)
    lib.unlink()
    target = tmp_path / "elsewhere.so"
    target.write_bytes(b"x")
    lib.symlink_to(target)
    with pytest.raises(UnsafeCacheError, match="not a regular file"):
        codegen.load_cached(["dynopt_grad"], prefix="dynopt_sweeps", key=_key(problem), directory=root)
    assert loads == []


@posix
def test_world_writable_parent_without_sticky_bit_is_refused(tmp_path):
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    with pytest.raises(UnsafeCacheError, match=f"{parent}: it is a parent of the cache directory .* sticky bit"):
        private_cache_dir(parent / "cache")
    os.chmod(parent, 0o1777)  # like /tmp: others cannot rename our directory away
    assert private_cache_dir(parent / "cache") == parent / "cache"


@needs_gcc
def test_tampered_library_is_rebuilt_never_loaded(tmp_path, loads):
    problem = open_loop(8)
    J, g = problem.value_and_grad(problem.W0)
    first = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")
    first.evaluate(problem, problem.W0)
    lib = tmp_path / f"dynopt_sweeps_{_key(problem)}.so"
    good = hashlib.sha256(lib.read_bytes()).hexdigest()
    assert loads == [(lib, good)] and (tmp_path / (lib.name + ".sha256")).read_text().split()[0] == good
    assert cache_info(tmp_path).ok and cache_info(tmp_path).verified == 1
    tampered = lib.read_bytes()[:-64] + b"\0" * 64  # same size, different bytes, put in place as a planter
    planted = tmp_path / "planted"                      # would: a new file renamed over the library
    planted.write_bytes(tampered)
    os.chmod(planted, 0o600)
    os.replace(planted, lib)
    bad = hashlib.sha256(tampered).hexdigest()
    info = cache_info(tmp_path)
    assert not info.ok and "SHA-256 does not match" in info.problems[0]
    assert codegen.load_cached(["dynopt_grad"], prefix="dynopt_sweeps", key=_key(problem), directory=tmp_path) is None
    second = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")
    again = open_loop(8)
    Jc, gc, _ = second.evaluate(again, problem.W0)
    assert not build_record(second, again)["cached"] and build_record(second, again)["compiled"]
    assert bad not in [h for _, h in loads]
    rebuilt = hashlib.sha256(lib.read_bytes()).hexdigest()
    assert rebuilt != bad and loads[-1] == (lib, rebuilt)
    assert (tmp_path / (lib.name + ".sha256")).read_text().split()[0] == rebuilt
    assert abs(Jc - J) <= RTOL * abs(J) and np.max(np.abs(gc - g)) <= RTOL * np.max(np.abs(g))
    # a record that no longer matches (the library is intact) also means rebuild
    (tmp_path / (lib.name + ".sha256")).write_text("0" * 64 + "  " + lib.name + "\n")
    third = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")
    third.evaluate(again, problem.W0)
    assert not build_record(third, again)["cached"] and cache_info(tmp_path).ok


def test_key_covers_the_dual_building_source_and_versions(monkeypatch):
    import casadi as ca

    import dynopt

    assert batched_pair.__module__ in codegen.GRAPH_MODULES  # the duals are derived there
    for name in ("dynopt.casadi.compiled", "dynopt.casadi.components", "dynopt.casadi.codegen",
                 "dynopt.casadi.reference"):
        assert name in codegen.GRAPH_MODULES and codegen.module_source(name)  # sources found, not empty
    problem = open_loop(8)
    x = ca.SX.sym("x")
    F = ca.Function("f", [x], [2 * x])
    base, base_s = _key(problem), codegen.structure_key([F], "gcc", ("-O2",))
    assert _key(open_loop(8)) == base  # deterministic
    real = codegen.module_source
    monkeypatch.setattr(codegen, "module_source",
                        lambda name: real(name) + (b"\n# fix\n" if name == batched_pair.__module__ else b""))
    assert _key(problem) != base and codegen.structure_key([F], "gcc", ("-O2",)) != base_s
    monkeypatch.setattr(codegen, "module_source", real)
    assert _key(problem) == base
    monkeypatch.setattr(dynopt, "__version__", dynopt.__version__ + ".post1")
    assert _key(problem) != base
    monkeypatch.undo()
    assert sweep_key(problem, chunk=None, compiler="gcc", flags=("-O3",)) != base
    assert sweep_key(problem, chunk=None, compiler="no-such-cc", flags=("-O2",)) != base
    assert _key(open_loop(9)) != base


WORKER = PROBLEM_SRC + """
import hashlib, json, sys, time
from pathlib import Path
from dynopt.casadi import codegen
from dynopt.casadi.compiled import CompiledBPTT
seen = []
real = codegen._load
def spy(names, lib):
    seen.append(hashlib.sha256(Path(lib).read_bytes()).hexdigest())
    return real(names, lib)
codegen._load = spy
problem = open_loop(int(sys.argv[2]))
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # both start building at the same moment
method = CompiledBPTT(codegen=True, cache_dir=sys.argv[1], loop="tower")
J, g, _ = method.evaluate(problem, problem.W0)
print(json.dumps(dict(J=J, g=list(g), loaded=seen, cached=build_record(method, problem)["cached"])))
"""


@needs_gcc
def test_two_processes_building_one_key_load_the_same_library(tmp_path):
    import dynopt

    T = 11
    problem = open_loop(T)
    J, g = problem.value_and_grad(problem.W0)
    root = Path(dynopt.__file__).resolve().parent.parent  # run the dynopt under test
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "cache"), str(T), str(start)],
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = []
    try:
        for p in procs:
            done.append(p.communicate(timeout=120))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.communicate()
        pytest.fail("concurrent builds did not finish within 120 s")
    for p, (out, err) in zip(procs, done):
        assert p.returncode == 0, err
    outs = [json.loads(out.strip().splitlines()[-1]) for out, _ in done]
    lib = tmp_path / "cache" / f"dynopt_sweeps_{_key(problem)}.so"
    digest = hashlib.sha256(lib.read_bytes()).hexdigest()
    assert [o["loaded"] for o in outs] == [[digest], [digest]]
    assert sorted(o["cached"] for o in outs) == [False, True]  # the lock: one compiles, the other waits and loads
    for o in outs:
        assert abs(o["J"] - J) <= RTOL * abs(J) and np.max(np.abs(np.array(o["g"]) - g)) <= RTOL * np.max(np.abs(g))
    info = cache_info(tmp_path / "cache")
    assert info.ok and info.entries == 1 and info.verified == 1
    assert not list((tmp_path / "cache").glob(".build-*"))  # no leftover staging directories


def test_cache_info_and_clear(tmp_path):
    root = private_cache_dir(tmp_path / "c")
    libs = [_plant(root, open_loop(T), payload=bytes(range(T)) * 10) for T in (5, 6)]
    (root / "unrelated.txt").write_text("kept")
    info = cache_info(root)
    files = libs + [Path(str(p) + ".sha256") for p in libs]
    assert (info.path, info.exists, info.entries, info.verified, info.ok) == (root, True, 2, 2, True)
    assert info.size == sum(os.path.getsize(p) for p in files)
    libs[0].write_bytes(b"changed")
    info = cache_info(root)
    assert info.verified == 1 and len(info.problems) == 1 and libs[0].name in info.problems[0]
    assert clear_cache(root) == 4
    assert cache_info(root).entries == 0 and (root / "unrelated.txt").exists() and root.is_dir()
    assert cache_info(tmp_path / "absent").exists is False and clear_cache(tmp_path / "absent") == 0


def test_native_builds_key_on_the_processor(monkeypatch):
    from dynopt.casadi import codegen as cg

    problem = open_loop(8)
    base = sweep_key(problem, chunk=None, compiler="gcc", flags=DEFAULT_FLAGS)
    portable = sweep_key(problem, chunk=None, compiler="gcc", flags=("-O3",))
    monkeypatch.setattr(cg, "cpu_identity", lambda: "another-cpu")
    assert sweep_key(problem, chunk=None, compiler="gcc", flags=DEFAULT_FLAGS) != base
    assert sweep_key(problem, chunk=None, compiler="gcc", flags=("-O3",)) == portable



@needs_gcc
def test_tampered_scan_library_is_rebuilt_never_loaded(tmp_path, loads):
    """The compiled scans (loop="scan", loaded through ctypes): a library whose bytes no longer match
    its SHA-256 record is rebuilt; the tampered bytes are never loaded."""
    problem = open_loop(8)
    J, g = problem.value_and_grad(problem.W0)
    CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="scan").evaluate(problem, problem.W0)
    libs = sorted(tmp_path.glob("dynopt_*.so"))  # the forward and the backward scan, the terminal cost
    assert len(libs) == 3 and sorted(p for p, _ in loads) == libs
    lib = libs[0]
    tampered = lib.read_bytes()[:-64] + b"\0" * 64
    planted = tmp_path / "planted"
    planted.write_bytes(tampered)
    os.chmod(planted, 0o600)
    os.replace(planted, lib)
    bad = hashlib.sha256(tampered).hexdigest()
    again = open_loop(8)
    method = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="scan")
    Jc, gc, _ = method.evaluate(again, problem.W0)
    assert not method.build(again).record["cached"]  # one of the two was rebuilt
    assert bad not in [h for _, h in loads]
    assert hashlib.sha256(lib.read_bytes()).hexdigest() != bad
    assert abs(Jc - J) <= RTOL * abs(J) and np.max(np.abs(gc - g)) <= RTOL * np.max(np.abs(g))
