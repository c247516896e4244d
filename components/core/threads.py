"""How many CPU threads torch, OpenMP and the BLAS libraries use: one rule for every entry point.

The rule (shown by ``segflow doctor``)::

    threads = max(1, (cores - loader_workers) // processes)
    cores   = min(CPUs in the affinity mask, ceil(CPU quota of the cgroup))

- *affinity mask*: ``os.sched_getaffinity`` (``taskset``, ``docker --cpuset-cpus``, Kubernetes
  static CPU manager);
- *CPU quota*: the tightest limit on the process's cgroup path, cgroup v2 ``cpu.max`` or v1
  ``cpu.cfs_quota_us / cpu.cfs_period_us`` (``docker --cpus``, a pod's CPU limit): torch sizes
  its pool from the host's cores and ignores both;
- *processes*: the processes of this job that share those cores: the Dask fold workers of a
  host, the DDP processes of a fold, the ``segflow serve`` workers (``SEGFLOW_PROCESSES``, set by
  whoever starts them);
- *loader_workers*: DataLoader worker processes of this process (each keeps a core busy).

``SEGFLOW_THREADS`` overrides it: a count, ``auto`` (the rule) or ``off`` (leave torch's and
OpenMP's own defaults: what segflow did before; benchmarks use it as the baseline). Without it an
``OMP_NUM_THREADS`` already in the environment is honoured as given.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless set): with OpenMP's default a
thread that finished its share spins for the others, and when another process shares the cores
the spinning threads lose every time slice to it (issue 26: a predict 6x slower beside a busy loop
per core with the default, 1.9x with the passive policy; ``bench/contention.py`` measures it, the
docs/benchmarks.md, "A shared machine", has the figures). OpenMP reads the policy once,
when torch loads it, so :func:`prepare_openmp` must run before ``import torch``: segflow calls it
first thing in the ``flows`` package (every stage, CLI command and warm server) and in the
packaged model's file, which MLflow executes in the client's process before the model imports
torch. A process that imported torch before either is told so once (a logged warning).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from components.core.errors import UserError

THREADS_ENV = "SEGFLOW_THREADS"
PROCESSES_ENV = "SEGFLOW_PROCESSES"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
OMP_THREADS_ENV = "OMP_NUM_THREADS"
PASSIVE = "PASSIVE"
OFF = "off"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

log = logging.getLogger(__name__)
_torch_before_policy: bool | None = None  # set by the first prepare_openmp(): torch was loaded first
_warned = False


class ThreadsSettingError(UserError):
    """``SEGFLOW_THREADS``, ``SEGFLOW_PROCESSES`` or ``OMP_NUM_THREADS`` is not a usable value."""


def _positive_int(name: str, text: str, extra: str = "") -> int:
    try:
        value = int(text.strip().split(",")[0])  # OMP_NUM_THREADS may list nested levels: "4,2"
    except ValueError:
        value = 0
    if value < 1:
        raise ThreadsSettingError(
            f"environment variable {name}={text!r}: expected a positive whole number{extra}; "
            f"fix or unset it (`unset {name}`)"
        )
    return value


def _cgroup_dirs(proc_cgroup: Path, root: Path) -> list[tuple[str, Path]]:
    """``(version, folder)`` of every cgroup folder on this process's path that may hold a CPU limit,
    leaf first, up to the hierarchy's root (a limit on any ancestor applies too)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[str, Path]] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2 (unified; under "unified/" on hybrid hosts)
            version, mounts = "v2", [root, root / "unified"]
        elif "cpu" in controllers.split(","):
            version, mounts = "v1", [root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"]
        else:
            continue
        for mount in mounts:
            leaf = mount / rel.lstrip("/")
            chain = [leaf, *leaf.parents] if leaf.is_dir() else [mount]  # no cgroup namespace: the mount
            found.extend((version, d) for d in chain if d == mount or mount in d.parents)
    return found


def _read_limit(version: str, folder: Path) -> float | None:
    """CPUs one cgroup folder allows (None: no limit there, or nothing readable)."""
    try:
        if version == "v2":
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        q = int((folder / "cpu.cfs_quota_us").read_text())
        p = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def cpu_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the tightest cgroup CPU quota on this process's path allows (e.g. 1.5); None: no quota."""
    limits = [lim for v, d in _cgroup_dirs(proc_cgroup, root) if (lim := _read_limit(v, d)) is not None]
    return min(limits) if limits else None


def affinity_cores() -> int:
    """CPUs in this process's affinity mask (all of the host's off Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_cores(quota: float | None = None, affinity: int | None = None) -> int:
    """``min(affinity mask, ceil(CPU quota))``, at least 1 (measured now unless given)."""
    aff = affinity_cores() if affinity is None else affinity
    q = cpu_quota() if quota is None else quota
    return max(1, min(aff, math.ceil(q)) if q is not None else aff)


@dataclass(frozen=True)
class ThreadPlan:
    """The decision and its inputs.

    Attributes:
        threads: torch / OpenMP / BLAS threads; None with ``SEGFLOW_THREADS=off`` (library defaults).
        source: ``SEGFLOW_THREADS``, ``OMP_NUM_THREADS``, ``rule`` or ``off``.
        cores: Usable cores (affinity and quota).
        affinity: CPUs in the affinity mask.
        quota: CPUs the cgroup quota allows (None: no quota).
        processes: Processes of this job sharing the cores.
        loader_workers: DataLoader worker processes of this process.
        wait_policy: ``OMP_WAIT_POLICY`` as set ("" = OpenMP's default, spinning).
    """

    threads: int | None
    source: str
    cores: int
    affinity: int
    quota: float | None
    processes: int
    loader_workers: int
    wait_policy: str

    def describe(self) -> str:
        """One line: the count and why."""
        if self.threads is None:
            return f"{THREADS_ENV}=off: torch's own default (host cores), OpenMP's own wait policy"
        if self.source != "rule":
            return f"{self.threads} thread(s), as {self.source} says"
        return (
            f"{self.threads} thread(s) = max(1, ({self.cores} cores - {self.loader_workers} loader "
            f"workers) // {self.processes} processes)"
        )

    def inputs(self) -> list[tuple[str, str]]:
        """The rule's inputs as (name, value) rows (for ``segflow doctor``)."""
        quota = f"{self.quota:g} CPUs" if self.quota is not None else "none"
        return [
            ("affinity mask", f"{self.affinity} CPUs (host: {os.cpu_count()})"),
            ("cgroup CPU quota", quota),
            ("usable cores", str(self.cores)),
            ("processes sharing them", f"{self.processes} ({PROCESSES_ENV})"),
            ("DataLoader workers", str(self.loader_workers)),
            ("OpenMP wait policy", self.wait_policy or "OpenMP default (spins)"),
        ]


def plan_threads(
    processes: int | None = None, loader_workers: int = 0, env: Mapping[str, str] | None = None
) -> ThreadPlan:
    """The thread count for this process (see the module docstring for the rule and the settings).

    Args:
        processes: Processes of this job sharing the cores; None = ``SEGFLOW_PROCESSES`` or 1.
        loader_workers: DataLoader worker processes this process runs beside its own threads.
        env: The environment (default ``os.environ``).

    Raises:
        ThreadsSettingError: A setting that is not a positive count (or ``auto`` / ``off``).
    """
    env = os.environ if env is None else env
    if processes is None:
        text = env.get(PROCESSES_ENV, "").strip()
        processes = _positive_int(PROCESSES_ENV, text) if text else 1
    quota, affinity = cpu_quota(), affinity_cores()
    cores = usable_cores(quota, affinity)

    def plan(threads: int | None, source: str) -> ThreadPlan:
        return ThreadPlan(
            threads, source, cores, affinity, quota, max(1, processes or 1), max(0, loader_workers),
            env.get(WAIT_POLICY_ENV, ""),
        )  # fmt: skip

    setting = env.get(THREADS_ENV, "").strip().lower()
    if setting == OFF:
        return plan(None, OFF)
    if setting not in ("", "auto"):
        return plan(_positive_int(THREADS_ENV, setting, ", 'auto' or 'off'"), THREADS_ENV)
    if env.get(OMP_THREADS_ENV, "").strip():
        return plan(_positive_int(OMP_THREADS_ENV, env[OMP_THREADS_ENV]), OMP_THREADS_ENV)
    return plan(max(1, (cores - max(0, loader_workers)) // max(1, processes)), "rule")


def prepare_openmp(env: MutableMapping[str, str] | None = None) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` (unless set, or ``SEGFLOW_THREADS=off``) before torch loads
    OpenMP; remember whether torch was loaded already (then the policy comes too late)."""
    global _torch_before_policy
    env = os.environ if env is None else env
    if _torch_before_policy is None:
        _torch_before_policy = "torch" in sys.modules and WAIT_POLICY_ENV not in env
    if env.get(THREADS_ENV, "").strip().lower() != OFF:
        env.setdefault(WAIT_POLICY_ENV, PASSIVE)


def _limit_blas(threads: int) -> None:
    """numpy's OpenBLAS sizes its own pool at import: limit it too, where threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # optional: numpy's BLAS does little of segflow's work
        return
    threadpool_limits(limits=threads, user_api="blas")


def apply_threads(processes: int | None = None, loader_workers: int = 0) -> ThreadPlan:
    """Decide (:func:`plan_threads`) and set torch's (and OpenMP's, MKL's, BLAS's) thread count.

    Call it where a process starts its work: a stage, a fold worker, a fold's training, a loaded
    packaged model (``predict``, ``serve``, a plain MLflow client).

    Raises:
        ThreadsSettingError: A setting that is not a positive count.
    """
    global _warned
    prepare_openmp()
    plan = plan_threads(processes, loader_workers)
    if plan.threads is None:
        return plan
    import torch

    if torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    _limit_blas(plan.threads)
    if _torch_before_policy and not _warned and plan.threads > 1:
        _warned = True
        log.warning(
            "torch was imported before segflow could set %s=%s: its OpenMP threads spin while they "
            "wait, which is slow when other processes share the cores; export %s=%s before "
            "starting Python (or set %s=1)",
            WAIT_POLICY_ENV,
            PASSIVE,
            WAIT_POLICY_ENV,
            PASSIVE,
            THREADS_ENV,
        )
    return plan
