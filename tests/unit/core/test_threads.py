"""The threads rule (components/core/threads.py): its inputs from real cgroup files, the settings,
and what a fresh process gets (the wait policy before torch loads, the count after)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.core import threads
from components.core.threads import (
    ThreadsSettingError,
    cpu_quota,
    plan_threads,
    prepare_openmp,
    usable_cores,
)

REPO = Path(__file__).resolve().parents[3]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_leaf_and_the_tighter_ancestor(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc_cgroup"
    _write(proc, "0::/kubepods/pod1/ctr\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods/pod1/ctr/cpu.max", "150000 100000\n")
    assert cpu_quota(proc, root) == 1.5
    _write(root / "kubepods/pod1/cpu.max", "50000 100000\n")  # the pod's limit is tighter
    assert cpu_quota(proc, root) == 0.5


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc_cgroup"
    _write(proc, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    folder = root / "cpu,cpuacct/docker/abc"
    _write(folder / "cpu.cfs_quota_us", "200000\n")
    _write(folder / "cpu.cfs_period_us", "100000\n")
    assert cpu_quota(proc, root) == 2.0
    _write(folder / "cpu.cfs_quota_us", "-1\n")  # docker without --cpus
    assert cpu_quota(proc, root) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "missing", tmp_path) is None


def test_usable_cores_is_the_affinity_capped_by_the_quota_rounded_up() -> None:
    assert usable_cores(quota=1.5, affinity=16) == 2
    assert usable_cores(quota=0.25, affinity=16) == 1
    assert usable_cores(quota=64.0, affinity=4) == 4
    assert usable_cores(quota=None, affinity=3) == 3


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host of 8 CPUs in the affinity mask and no quota (the rule's arithmetic, not this machine's)."""
    monkeypatch.setattr(threads, "affinity_cores", lambda: 8)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)


@pytest.mark.usefixtures("eight_cores")
def test_rule_shares_the_cores_among_processes_and_loader_workers() -> None:
    assert plan_threads(env={}).threads == 8
    assert plan_threads(processes=3, env={}).threads == 2
    assert plan_threads(processes=2, loader_workers=2, env={}).threads == 3
    assert plan_threads(processes=16, env={}).threads == 1  # never 0
    plan = plan_threads(env={"SEGFLOW_PROCESSES": "4"})
    assert (plan.threads, plan.processes, plan.source) == (2, 4, "rule")
    assert plan.describe() == "2 thread(s) = max(1, (8 cores - 0 loader workers) // 4 processes)"


@pytest.mark.usefixtures("eight_cores")
def test_settings_override_the_rule() -> None:
    assert plan_threads(env={"SEGFLOW_THREADS": "3", "OMP_NUM_THREADS": "5"}).threads == 3
    plan = plan_threads(env={"OMP_NUM_THREADS": "5,2"})  # OpenMP's nested form: the first level
    assert (plan.threads, plan.source) == (5, "OMP_NUM_THREADS")
    assert plan_threads(env={"SEGFLOW_THREADS": "auto", "SEGFLOW_PROCESSES": "2"}).threads == 4
    off = plan_threads(env={"SEGFLOW_THREADS": "off"})
    assert (off.threads, off.source) == (None, "off")
    assert "torch's own default" in off.describe()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEGFLOW_THREADS", "many"),
        ("SEGFLOW_THREADS", "0"),
        ("SEGFLOW_PROCESSES", "-2"),
        ("OMP_NUM_THREADS", "x"),
    ],
)
def test_a_bad_setting_is_a_user_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ThreadsSettingError, match=f"{name}='{value}': expected a positive whole number"):
        plan_threads(env={name: value})


def test_passive_wait_policy_unless_set_or_off() -> None:
    env: dict[str, str] = {}
    prepare_openmp(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    prepare_openmp(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    env = {"SEGFLOW_THREADS": "off"}
    prepare_openmp(env)
    assert "OMP_WAIT_POLICY" not in env


PROBE = """
import json, os, sys
import flows  # what every stage, CLI command and warm server imports first
policy_before_torch = os.environ.get("OMP_WAIT_POLICY")
from components.core.threads import apply_threads
plan = apply_threads(processes=int(sys.argv[1]))
import torch
print(json.dumps({"policy": policy_before_torch, "threads": torch.get_num_threads(), "plan": plan.threads}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    drop = {"OMP_WAIT_POLICY", "OMP_NUM_THREADS", "SEGFLOW_THREADS", "SEGFLOW_PROCESSES", "MKL_NUM_THREADS"}
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def test_a_fresh_segflow_process_waits_passively_and_takes_the_rules_threads() -> None:
    cores = usable_cores()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "2"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"policy": "PASSIVE", "threads": max(1, cores // 2), "plan": max(1, cores // 2)}


def test_off_leaves_torch_and_openmp_alone() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "2"],
        cwd=REPO,
        env=_clean_env(SEGFLOW_THREADS="off"),
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["policy"] is None and got["plan"] is None
