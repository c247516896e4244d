"""``up``, ``down`` and ``status`` of the native stack (see infra/services.sh)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from infra.stack import procs
from infra.stack import services as sv
from infra.stack.procs import say
from infra.stack.state import State, default_state_dir, export_lines, write_private


@dataclass(frozen=True)
class Service:
    """One process of the stack: its name, the port it owns (if any) and how it starts."""

    name: str
    port_key: str | None
    start: Callable[[sv.Stack], None]
    tier: int  # ``down`` stops tier 2 (workers), then 1 (servers), then 0 (postgres), each in parallel
    group_signal: bool = True  # SIGINT to the process group (Ctrl-C) or to the leader only


def _dask_worker_start(name: str) -> Callable[[sv.Stack], None]:
    return lambda stack: sv.start_dask_workers(stack, [name])


# Start order; ``down`` goes in reverse (workers before the servers they talk to).
SERVICES: tuple[Service, ...] = (
    Service("postgres", "postgres", sv.start_postgres, 0, group_signal=False),
    Service("s3", "s3", sv.start_s3, 1),
    Service("dask-scheduler", "dask", sv.start_dask_scheduler, 1),
    Service("mlflow", "mlflow", sv.start_mlflow, 1),
    Service("prefect-server", "prefect", sv.start_prefect, 1),
    Service("prefect-worker", None, sv.start_prefect_worker, 2),
    # SIGINT to the nanny only: it closes its worker process (a SIGINT to both costs 8 s).
    *(Service(n, None, _dask_worker_start(n), 2, group_signal=False) for n in sv.dask_worker_names()),
)
# A restart of one of these invalidates the others' connections: restart everything.
FOUNDATION = ("postgres", "s3", "dask-scheduler")


def _running(state: State) -> set[str]:
    return {s.name for s in SERVICES if procs.running(state.pid(s.name)) is not None}


def up(state: State | None = None) -> dict[str, str]:
    """Start what is not running, wait until every service answers, write and return the env."""
    state = state or State(default_state_dir())
    state.create()
    running = _running(state)
    if running and not set(FOUNDATION) <= running:
        say(f"{', '.join(sorted(set(FOUNDATION) - running))} not running: restarting the whole stack")
        down(state, quiet=True)
        running = set()
    keep = {s.port_key for s in SERVICES if s.name in running and s.port_key}
    stack = sv.Stack(state, state.ports({k for k in keep if k}), state.secrets())
    t0 = time.monotonic()

    def ensure(*names: str) -> None:
        for svc in SERVICES:
            if svc.name in names and svc.name not in running:
                port = f" on 127.0.0.1:{stack.ports[svc.port_key]}" if svc.port_key else ""
                say(f"starting {svc.name}{port} (log {state.log(svc.name)})")
                svc.start(stack)

    try:
        ensure(*FOUNDATION)
        stack.wait("postgres", lambda: sv.postgres_ready(stack), 60)
        sv.create_databases(stack)
        stack.wait("s3", lambda: sv.s3_ready(stack), 60)
        sv.create_buckets(stack)
        stack.wait("dask-scheduler", lambda: procs.port_answers(stack.ports["dask"]), 60)
        ensure("mlflow", "prefect-server", *sv.dask_worker_names())
        stack.wait("prefect-server", lambda: sv.prefect_ready(stack), 180)
        ensure("prefect-worker")
        stack.wait("mlflow", lambda: sv.mlflow_ready(stack), 180)
        for name in sv.dask_worker_names():  # the workers' own pid files, the scheduler's count
            stack.wait(
                name, lambda: sv.dask_workers_connected(stack) >= sv.N_DASK_WORKERS, 90, "did not join"
            )
        stack.wait("prefect-worker", lambda: sv.prefect_worker_online(stack), 90, "did not poll its pool")
        say(f"all answer after {time.monotonic() - t0:.1f} s")
    except (procs.ServiceError, OSError) as exc:
        say(f"start-up failed ({type(exc).__name__}); stopping what runs")
        down(state, quiet=True)
        raise
    env = stack.client_env()
    write_private(state.env_file, export_lines(env))
    verb = "already up" if running >= {s.name for s in SERVICES} else f"up in {time.monotonic() - t0:.1f} s"
    say(f"{verb}; env in {state.env_file} (source it, or eval this output)")
    return env


def _stop(state: State, svc: Service) -> float | None:
    """Seconds it took to stop ``svc``; None when it was not running."""
    t0 = time.monotonic()
    return time.monotonic() - t0 if procs.stop(state.pid(svc.name), group=svc.group_signal) else None


def down(state: State | None = None, *, purge: bool = False, quiet: bool = False) -> None:
    """Stop every service (process groups, workers first); idempotent. ``purge`` deletes the state."""
    state = state or State(default_state_dir())
    if state.pids.is_dir():
        for tier in (2, 1, 0):
            batch = [s for s in SERVICES if s.tier == tier]
            with ThreadPoolExecutor(len(batch)) as pool:
                stopped = pool.map(lambda s: _stop(state, s), batch)
                for svc, took in zip(batch, stopped, strict=True):
                    if took is not None and not quiet:
                        say(f"stopped {svc.name} ({took:.1f} s)")
    ports = state.stored_ports()
    deadline = time.monotonic() + 10
    while any(procs.port_answers(p) for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if purge and state.root.is_dir():
        shutil.rmtree(state.root)
        if not quiet:
            say(f"removed {state.root}")


def status(state: State | None = None) -> bool:
    """Print each service's state; True when all are up."""
    state = state or State(default_state_dir())
    ports = state.stored_ports()
    all_up = True
    for svc in SERVICES:
        proc = procs.running(state.pid(svc.name))
        port = ports.get(svc.port_key) if svc.port_key else None
        ok = proc is not None and (port is None or procs.port_answers(port))
        all_up &= ok
        where = f"127.0.0.1:{port}" if port else "-"
        pid = f"pid {proc.pid}" if proc else ""
        print(f"{svc.name:<16} {'up' if ok else 'down':<5} {where:<22} {pid}")
    print(f"state: {state.root}")
    return all_up
