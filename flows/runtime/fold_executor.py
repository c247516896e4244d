"""Where the train stage's folds run (``train.executor``): in the flow, one after another
(``sequential``), or as Prefect task runs on a Dask cluster through prefect-dask's
``DaskTaskRunner`` (``dask``). The fold task is the same in both; only where it runs differs.

The cluster: ``$SEGFLOW_DASK_ADDRESS`` (an address is environment, like the MLflow URI, never a
params key: ``infra/services.sh up`` prints it), else a ``LocalCluster`` on 127.0.0.1 with one
single-threaded worker process per fold to train, at most one per usable core (and, with CUDA,
one per GPU, each worker declaring ``GPU=1``). Workers of a remote cluster need the project at the
same path (a shared filesystem: the folds write into the flow's resume folder) and the venv.

On the workers (``FoldWorkerSetup`` of flows/runtime/dask_worker.py, a Dask worker plugin): torch uses as
many threads as the worker has (1: two folds on two cores do not fight over them), a worker of a multi-GPU
``LocalCluster`` takes its own GPU, and with a remote cluster the tracking/S3 client settings of
the flow's environment (:data:`FORWARDED_ENV`, credentials included) are set in the worker's
environment. They travel inside the plugin (Dask's connection), never as task parameters, params
or tags. A LocalCluster's workers inherit the flow's environment as it is. When the workers
declare a ``GPU`` resource, each fold asks for ``resources={"GPU": 1}``: one fold per GPU.

Stopping: signals reach the flow's process only (components/training/interrupt.py handles them
in its main thread). While the folds run there, the flow polls its :class:`StopRequest`; on a
stop it sets a Dask event that each fold polls (:class:`ClusterStop`, once a second, from its
training loop's step checks), so every fold stops after its current step, ends its MLflow run
KILLED and keeps the state of its last complete epoch for a resume, as in a sequential run. On a
worker the stop is a plain exception (:class:`FoldStopped`): a KeyboardInterrupt would take the
worker down and Dask would then run the fold again elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from components.training.interrupt import StopRequest
from components.training.workers import usable_cores

DASK_ADDRESS_ENV = "SEGFLOW_DASK_ADDRESS"
# What a fold's MLflow (and S3 artifact) client reads, handed to the workers of a remote cluster.
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "NO_ALBUMENTATIONS_UPDATE",
)
STOP_POLL_S = 1.0  # how often a fold on a worker asks the scheduler whether to stop
STOP_GRACE_S = 120.0  # how long the flow waits for stopping folds to end their runs
WAIT_STEP_S = 0.25  # the flow's poll of its futures (and of its signal-set stop flag)


class FoldStopped(RuntimeError):
    """A fold on a Dask worker stopped because the flow was asked to stop (its run ends KILLED)."""


class ClusterStop(StopRequest):
    """A :class:`StopRequest` that a fold on a Dask worker polls: set when the flow's Dask event is.

    Picklable (it carries only the event's name); polls the scheduler at most every
    :data:`STOP_POLL_S` seconds. Outside a Dask worker, or when the scheduler does not answer,
    it never stops (the flow's side still does).
    """

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self._next_poll = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {"event": self.event}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(str(state["event"]))  # type: ignore[misc]

    @property
    def requested(self) -> bool:
        """Whether the flow asked to stop (a scheduler round trip at most every STOP_POLL_S)."""
        now = time.monotonic()
        if self.signum is None and now >= self._next_poll:
            self._next_poll = now + STOP_POLL_S
            with contextlib.suppress(Exception):  # no worker client / scheduler gone: keep going
                from distributed import Event

                if Event(self.event).is_set():
                    self.signum = int(signal.SIGTERM)
        return self.signum is not None

    def check(self, where: str = "") -> None:
        """Raise :class:`FoldStopped` when the flow asked to stop.

        Raises:
            FoldStopped: The flow asked to stop.
        """
        if self.requested:
            at = f" {where}" if where else ""
            raise FoldStopped(f"stopped{at}: the train flow was asked to stop")


def where_running() -> str:
    """``dask worker <address> on <host> (pid N)`` inside a Dask worker, else ``<host> (pid N)``."""
    here = f"{socket.gethostname()} (pid {os.getpid()})"
    try:
        from distributed import get_worker

        return f"dask worker {get_worker().address} on {here}"
    except (ImportError, ValueError):
        return here


@contextlib.contextmanager
def in_directory(path: str | None) -> Iterator[None]:
    """Run in ``path`` (the flow's working directory; a remote worker's differs), then go back.

    Safe on Dask workers because theirs are single-threaded: one fold per process at a time.
    """
    if path is None or os.path.realpath(path) == os.path.realpath(os.getcwd()):
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_cluster_kwargs(n_folds: int, cores: int | None = None, gpus: int | None = None) -> dict[str, Any]:
    """The LocalCluster for ``n_folds`` folds: one single-threaded worker process per fold, at most
    one per core (and per GPU, with ``GPU=1`` declared), on 127.0.0.1 without a dashboard."""
    cores = usable_cores() if cores is None else cores
    gpus = _gpu_count() if gpus is None else gpus
    n = max(1, min(n_folds, cores, gpus or n_folds))
    kwargs: dict[str, Any] = {
        "n_workers": n,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }
    if gpus:
        kwargs["resources"] = {"GPU": 1}
    return kwargs


def dask_task_runner(n_folds: int) -> Any:
    """prefect-dask's runner: on ``$SEGFLOW_DASK_ADDRESS``, else on a new LocalCluster."""
    from prefect_dask import DaskTaskRunner

    address = os.environ.get(DASK_ADDRESS_ENV)
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(n_folds))


def workers_declare_gpu(client: Any) -> bool:
    """Whether any worker of the cluster declares a ``GPU`` resource."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return any(w.get("resources", {}).get("GPU") for w in workers.values())


def folds_per_host(client: Any) -> dict[str, int]:
    """Host -> folds its workers run at once (their task threads): the processes sharing its cores."""
    counts: dict[str, int] = {}
    for address, w in client.scheduler_info(n_workers=-1).get("workers", {}).items():
        host = urlsplit(str(address)).hostname or ""
        counts[host] = counts.get(host, 0) + int(w.get("nthreads", 1) or 1)
    return counts


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`FORWARDED_ENV` variables that are set (for a remote cluster's workers)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in FORWARDED_ENV if environ.get(k)}


def _failure(fut: Any) -> BaseException | None:
    """The exception of a finished future's task run (None when it completed)."""
    try:
        state = fut.wrapped_future.result()
    except BaseException as exc:  # the Dask task itself failed (e.g. its worker died)
        return exc
    if hasattr(state, "is_completed") and not state.is_completed():
        try:
            state.result(raise_on_failure=True)
        except BaseException as exc:
            return exc
        return RuntimeError(f"fold task run ended {state.type}: {state.message}")
    return None


def run_on_dask(task: Any, calls: Sequence[Mapping[str, Any]], stop: StopRequest) -> list[Any]:
    """Run ``task`` once per parameter set in ``calls`` on the Dask cluster; their results in order.

    Each call gets ``stop=`` a :class:`ClusterStop`. The flow's ``stop`` (set by its signal
    handlers) and the first failing fold both stop the other folds after their current step.

    Raises:
        TrainingInterrupted: ``stop`` was requested (after the folds ended their runs).
        BaseException: The first fold failure (not a stop), as the fold raised it.
    """
    import dask
    from distributed import Event

    runner = dask_task_runner(len(calls))
    event = f"segflow-stop-{uuid.uuid4().hex}"
    with runner:
        client = runner.client
        remote = os.environ.get(DASK_ADDRESS_ENV) is not None
        from flows.runtime.dask_worker import FoldWorkerSetup  # distributed: imported when folds go to Dask

        client.register_plugin(FoldWorkerSetup(forwarded_env() if remote else {}, folds_per_host(client)))
        gpu = workers_declare_gpu(client)
        n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        address = client.scheduler.address
        print(f"train: {len(calls)} folds on Dask ({address}, {n_workers} workers, GPU: {gpu})")
        resources = dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext()
        with resources:
            futures = [runner.submit(task, {**call, "stop": ClusterStop(event)}) for call in calls]
        try:
            first = _wait(futures, stop)
        except BaseException:  # a second signal: abandon the folds (closing the cluster ends them)
            Event(event, client=client).set()
            raise
        if first is not None or stop.requested:
            Event(event, client=client).set()  # the other folds stop after their current step
            _wait(futures, StopRequest(), STOP_GRACE_S)
        if stop.requested:
            stop.check("while the folds ran on Dask")
        if first is not None:
            raise first
        return [f.result() for f in futures]


def _wait(futures: Sequence[Any], stop: StopRequest, timeout: float | None = None) -> BaseException | None:
    """Until every future is done, ``stop`` is requested or a fold fails (its exception returned)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: set[int] = set()
    while True:
        for i, fut in enumerate(futures):
            if i not in seen and fut.wrapped_future.done():
                seen.add(i)
                exc = _failure(fut)
                if exc is not None and not isinstance(exc, FoldStopped):
                    return exc
        if len(seen) == len(futures) or stop.requested:
            return None
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(WAIT_STEP_S)
