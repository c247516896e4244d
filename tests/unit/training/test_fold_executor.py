"""flows/runtime/fold_executor.py without a cluster: the LocalCluster sizing, the stop that crosses to
workers, what is forwarded to a remote cluster's workers (and never shown)."""

from __future__ import annotations

import pickle
import signal

import pytest

from flows.runtime.dask_worker import FoldWorkerSetup
from flows.runtime.fold_executor import (
    ClusterStop,
    FoldStopped,
    forwarded_env,
    local_cluster_kwargs,
    where_running,
)


def test_local_cluster_one_single_threaded_worker_per_fold_capped_by_cores_and_gpus() -> None:
    cpu = local_cluster_kwargs(5, cores=2, gpus=0)
    assert cpu["n_workers"] == 2 and cpu["threads_per_worker"] == 1 and cpu["processes"]
    assert cpu["host"] == "127.0.0.1" and cpu["dashboard_address"] is None
    assert "resources" not in cpu  # nothing declared: no fold would be scheduled on a GPU request
    assert local_cluster_kwargs(1, cores=8, gpus=0)["n_workers"] == 1
    gpu = local_cluster_kwargs(5, cores=16, gpus=3)
    assert gpu["n_workers"] == 3 and gpu["resources"] == {"GPU": 1}


def test_cluster_stop_pickles_to_a_fresh_flag_and_raises_a_plain_exception() -> None:
    stop = ClusterStop("segflow-stop-x")
    assert not stop.requested  # outside a Dask worker: never set, no error
    stop.request(signal.SIGTERM)
    copy = pickle.loads(pickle.dumps(stop))
    assert copy.event == "segflow-stop-x" and not copy.requested
    with pytest.raises(FoldStopped) as err:
        stop.check("in fold 0")
    assert not isinstance(err.value, KeyboardInterrupt)  # would take a Dask worker down


def test_only_set_client_variables_are_forwarded_and_never_shown() -> None:
    environ = {"MLFLOW_TRACKING_URI": "http://x", "MLFLOW_TRACKING_PASSWORD": "s3cret", "HOME": "/r"}
    env = forwarded_env(environ)
    assert env == {"MLFLOW_TRACKING_URI": "http://x", "MLFLOW_TRACKING_PASSWORD": "s3cret"}
    assert "s3cret" not in repr(FoldWorkerSetup(env))


def test_where_running_outside_a_worker_names_this_process() -> None:
    import os

    assert where_running().endswith(f"(pid {os.getpid()})")
    assert not where_running().startswith("dask worker")


class _Scheduler:
    """What ``client.scheduler_info`` answers, for a cluster of two hosts (the dict Dask returns)."""

    def scheduler_info(self, n_workers: int = 5) -> dict:
        del n_workers
        workers = {"tcp://127.0.0.1:4001": 1, "tcp://127.0.0.1:4002": 1, "tcp://10.0.0.5:4003": 4}
        return {"workers": {a: {"nthreads": n} for a, n in workers.items()}}


def test_each_worker_shares_its_hosts_cores_with_the_folds_running_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    from types import SimpleNamespace

    import torch

    from flows.runtime.fold_executor import folds_per_host

    per_host = folds_per_host(_Scheduler())
    assert per_host == {"127.0.0.1": 2, "10.0.0.5": 4}
    monkeypatch.delenv("SEGFLOW_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("components.core.threads.affinity_cores", lambda: 8)
    monkeypatch.setattr("components.core.threads.cpu_quota", lambda: None)
    threads = torch.get_num_threads()
    worker = SimpleNamespace(address="tcp://127.0.0.1:4002", name="1", state=SimpleNamespace(nthreads=1))
    try:
        FoldWorkerSetup({}, per_host).setup(worker)
        assert os.environ["SEGFLOW_PROCESSES"] == "2" and torch.get_num_threads() == 4  # 8 cores / 2 folds
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("SEGFLOW_PROCESSES", None)
