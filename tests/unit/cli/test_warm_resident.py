"""The resident warm server's key, folder and idle settings (flows/runtime/warm_resident.py); a real
server serving real stage commands is tests/integration/test_warm_resident.py."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime.warm_resident import DEFAULT_IDLE_S, code_key, idle_seconds, private_dir


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package ``residentpkg`` of two modules, found through sys.path."""
    pkg = tmp_path / "src" / "residentpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return pkg


def test_key_changes_with_the_code(package: Path) -> None:
    env = {"HOME": "/home/u"}
    key = code_key(env, ("residentpkg",))
    assert key == code_key(env, ("residentpkg",))
    mod = package / "sub" / "mod.py"
    stat = mod.stat()
    mod.write_text("VALUE = 2\n")  # same size; a new modification time
    os.utime(mod, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    edited = code_key(env, ("residentpkg",))
    assert edited != key
    (package / "new.py").write_text("")
    assert code_key(env, ("residentpkg",)) not in (key, edited)


def test_key_ignores_per_run_keys_but_not_the_rest(package: Path) -> None:
    env = {"HOME": "/home/u", "OMP_NUM_THREADS": "2"}
    key = code_key(env, ("residentpkg",))
    per_run = {**env, "DVC_STAGE": "train", "SEGFLOW_STAGE_TIMING": "/t", "PWD": "/x", "SHLVL": "3"}
    assert code_key(per_run, ("residentpkg",)) == key
    assert code_key({**env, "OMP_NUM_THREADS": "1"}, ("residentpkg",)) != key
    assert code_key({**env, "PYTHONHASHSEED": "0"}, ("residentpkg",)) != key


def test_key_changes_with_sys_path(package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = code_key({}, ("residentpkg",))
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path / "elsewhere")])
    assert code_key({}, ("residentpkg",)) != key


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path (pytest's are too long for a socket name)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        yield Path(folder)


def test_private_dir_is_made_private_and_refused_when_not(short_tmp: Path) -> None:
    tmp_path = short_tmp
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    folder = private_dir(env)
    assert folder == str(tmp_path / f"segflow-warm-{os.getuid()}")
    assert (Path(folder).stat().st_mode & 0o777) == 0o700
    Path(folder).chmod(0o755)  # others could connect or plant a socket: stages run cold
    assert private_dir(env) is None
    Path(folder).rmdir()
    (tmp_path / "target").mkdir(mode=0o700)
    Path(folder).symlink_to(tmp_path / "target")
    assert private_dir(env) is None
    assert private_dir({"XDG_RUNTIME_DIR": str(tmp_path / ("x" * 90))}) is None  # too long for a socket


def test_idle_seconds() -> None:
    assert idle_seconds({}) == DEFAULT_IDLE_S
    assert idle_seconds({"SEGFLOW_WARM_IDLE_S": "30"}) == 30.0
    assert idle_seconds({"SEGFLOW_WARM_IDLE_S": "0"}) == 0.0
    assert idle_seconds({"SEGFLOW_WARM_IDLE_S": "soon"}) == DEFAULT_IDLE_S
    assert idle_seconds({"SEGFLOW_WARM_IDLE_S": "30", "SEGFLOW_WARM_STAGES": "0"}) == 0.0
