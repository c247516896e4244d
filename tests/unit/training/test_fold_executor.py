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
