"""The ``dynopt`` command: ``--help`` on every subcommand, ``--version``, ``cache info`` / ``cache clear``.

Version against the installed package metadata (importlib.metadata); cache sizes against
os.path.getsize; digests against hashlib.
"""

import hashlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dynopt
from dynopt.cli import main as cli_main

SUBCOMMANDS = [["demo"], ["diagnose"], ["cache"], ["cache", "info"], ["cache", "clear"]]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_help_on_every_subcommand(words, capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(words + ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dynopt {' '.join(words)} ")
    assert "--help" in out


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and all(name in out for name in ("demo", "diagnose", "cache", "--version"))


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dynopt {importlib.metadata.version('dynopt')}"
    assert dynopt.__version__ == importlib.metadata.version("dynopt")


def test_diagnose_help_through_the_real_entry_point():
    """The reported failure: `dynopt diagnose --help` said "unrecognized arguments"."""
    root = Path(dynopt.__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "dynopt", "diagnose", "--help"], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: dynopt diagnose") and "--horizon" in proc.stdout


def _entry(root: Path, name: str, payload: bytes):
    lib = root / f"dynopt_sweeps_{name}.so"
    lib.write_bytes(payload)
    rec = root / (lib.name + ".sha256")
    rec.write_text(f"{hashlib.sha256(payload).hexdigest()}  {lib.name}\n")
    os.chmod(lib, 0o600)
    os.chmod(rec, 0o600)
    return [lib, rec]


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    root = tmp_path / "cache"
    monkeypatch.setenv("DYNOPT_CACHE_DIR", str(root))
    assert cli_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"path:    {root}" in out and "does not exist yet" in out and not root.exists()
    root.mkdir(mode=0o700)
    files = _entry(root, "a" * 20, b"\x7fELF" + bytes(3000)) + _entry(root, "b" * 20, b"\x7fELF" + bytes(100))
    (root / ".dynopt_sweeps_aaaaaaaaaaaaaaaaaaaa.so.lock").touch()
    (root / "notes.txt").write_text("not dynopt's")
    assert cli_main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    total = sum(os.path.getsize(p) for p in files)
    assert total == 2 * 4 + 3000 + 100 + 2 * (64 + 2 + len(files[0].name) + 1)
    assert f"size:    {total / 1024:.1f} KiB" in out
    assert "entries: 2 (2 with a matching SHA-256)" in out and "checks:  passed" in out
    files[2].write_bytes(b"tampered")  # the second library no longer matches its record
    assert cli_main(["cache", "info"]) == 1
    out = capsys.readouterr().out
    assert "checks:  1 failed" in out and f"{files[2].name}: SHA-256 does not match" in out
    if hasattr(os, "geteuid"):
        os.chmod(root, 0o777)
        assert cli_main(["cache", "info", "--dir", str(root)]) == 1
        assert "writable by group and others" in capsys.readouterr().out
        os.chmod(root, 0o700)
    assert cli_main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.strip() == f"removed 5 files from {root}"
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert cli_main(["cache", "info"]) == 0
    assert "entries: 0 (0 with a matching SHA-256)" in capsys.readouterr().out


def test_cache_needs_an_action(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["cache"])
    assert done.value.code == 2 and "info,clear" in capsys.readouterr().err
