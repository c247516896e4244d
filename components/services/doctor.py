"""``segflow doctor``: the backend of each part (from the standard environment) and whether it answers.

Parts: MLflow tracking, MLflow artifacts, Prefect API, DVC remote, Dask. An embedded default
(SQLite MLflow, an ephemeral Prefect API, no DVC remote, a LocalCluster) has nothing to reach and
is reported as such; a configured service that does not answer is a failure. Nothing printed
carries a credential: URLs are masked and only the names of credential variables appear.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.services.probes import basic_auth, http, mask_url, s3_bucket, split_bucket, tcp

MLFLOW_DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3.x's own default


@dataclass(frozen=True)
class Check:
    """One part's verdict. ``ok`` None: embedded or not probed (nothing that could be down)."""

    part: str
    backend: str
    ok: bool | None
    detail: str

    @property
    def failed(self) -> bool:
        return self.ok is False


def _mlflow_headers(env: Mapping[str, str]) -> dict[str, str]:
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    return basic_auth(user, password) if user and password else {}


def _is_http(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


def check_mlflow_tracking(env: Mapping[str, str], root: Path) -> Check:
    uri = env.get("MLFLOW_TRACKING_URI") or MLFLOW_DEFAULT_URI
    part = "MLflow tracking"
    if _is_http(uri):
        base = uri.rstrip("/")
        health = http(f"{base}/health")
        if health.status != 200:
            return Check(part, f"MLflow server {mask_url(uri)}", False, f"/health: {health.describe()}")
        headers = _mlflow_headers(env)
        api = http(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", headers=headers)
        auth = "with MLFLOW_TRACKING_USERNAME/PASSWORD" if headers else "without credentials"
        if api.status == 200:
            return Check(
                part, f"MLflow server {mask_url(uri)}", True, f"answers, API {auth}: {api.describe()}"
            )
        hint = (
            " (set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)" if api.status in (401, 403) else ""
        )
        return Check(part, f"MLflow server {mask_url(uri)}", False, f"API {auth}: {api.describe()}{hint}")
    scheme = urlsplit(uri).scheme
    if scheme == "sqlite":
        path = uri.removeprefix("sqlite:///")
        where = Path(path) if Path(path).is_absolute() else root / path
        state = "exists" if where.is_file() else "is created at the first run"
        return Check(part, f"embedded SQLite {uri}", None, f"no server; the file {state}")
    if scheme.startswith(("postgresql", "mysql", "mssql")):
        parts = urlsplit(uri)
        err = tcp(parts.hostname or "localhost", parts.port or 5432)
        verdict = "database port answers" if err is None else f"no answer ({err})"
        return Check(part, f"database {mask_url(uri)} (no server)", err is None, verdict)
    return Check(part, mask_url(uri), None, "not probed (unknown scheme)")


def check_mlflow_artifacts(env: Mapping[str, str], root: Path) -> Check:
    uri = env.get("MLFLOW_TRACKING_URI") or MLFLOW_DEFAULT_URI
    part = "MLflow artifacts"
    s3 = env.get("MLFLOW_S3_ENDPOINT_URL")
    direct = ""
    if s3:
        answer = http(s3)
        direct = f"; direct S3 endpoint {mask_url(s3)}: {'answers' if answer.status else answer.describe()}"
    if not _is_http(uri):
        return Check(part, "local folder ./mlruns (embedded)", None, f"no server{direct}")
    base = uri.rstrip("/")
    listing = http(f"{base}/api/2.0/mlflow-artifacts/artifacts?path=", headers=_mlflow_headers(env))
    if listing.status == 200:
        return Check(
            part,
            f"proxied by the MLflow server (mlflow-artifacts:/) at {mask_url(uri)}",
            True,
            f"the server's artifact store answers: {listing.describe()}{direct}",
        )
    if s3:  # no proxy (--no-serve-artifacts): clients write to S3 themselves
        answer = http(s3)
        return Check(
            part, f"S3 endpoint {mask_url(s3)} (not proxied)", answer.status is not None, answer.describe()
        )
    return Check(part, f"proxied by {mask_url(uri)}", False, f"artifact listing: {listing.describe()}")


def check_prefect(env: Mapping[str, str], root: Path) -> Check:
    url = env.get("PREFECT_API_URL")
    part = "Prefect API"
    if not url:
        return Check(part, "ephemeral (a temporary local server per process)", None, "no PREFECT_API_URL")
    headers: dict[str, str] = {}
    if key := env.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    elif auth := env.get("PREFECT_API_AUTH_STRING"):
        user, _, password = auth.partition(":")
        headers = basic_auth(user, password)
    base = url.rstrip("/")
    health = http(f"{base}/health", headers=headers)
    backend = f"Prefect server {mask_url(url)}"
    if health.status != 200:
        return Check(part, backend, False, f"/health: {health.describe()}")
    detail = f"/health: {health.describe()}"
    if pool := env.get("SEGFLOW_WORK_POOL"):
        workers = http(f"{base}/work_pools/{pool}/workers/filter", headers=headers, data=b"{}")
        if workers.status == 200:
            online = sum(1 for w in json.loads(workers.body) if w.get("status") == "ONLINE")
            detail += f"; work pool {pool!r}: {online} worker(s) online"
        else:
            detail += f"; work pool {pool!r}: {workers.describe()}"
    return Check(part, backend, True, detail)


def dvc_remote(root: Path, env: Mapping[str, str]) -> tuple[str | None, dict[str, Any], str]:
    """The default DVC remote: ``(url, its config, where it was found)``; ``.dvc/config`` (all
    levels, DVC's own loader) first, then ``$SEGFLOW_DVC_REMOTE``."""
    dvc_dir = root / ".dvc"
    if dvc_dir.is_dir():
        from dvc.config import Config

        config = Config(dvc_dir=str(dvc_dir))
        name = config["core"].get("remote")
        if name and name in config["remote"]:
            remote = dict(config["remote"][name])
            return str(remote.get("url")), remote, f"DVC remote {name!r} of {dvc_dir / 'config'}"
    if url := env.get("SEGFLOW_DVC_REMOTE"):
        return url, {}, "SEGFLOW_DVC_REMOTE (not yet a remote in .dvc/config)"
    return None, {}, ""


def check_dvc(env: Mapping[str, str], root: Path) -> Check:
    part = "DVC remote"
    url, remote, source = dvc_remote(root, env)
    if url is None:
        return Check(part, "none (local cache only)", None, "no default remote and no SEGFLOW_DVC_REMOTE")
    scheme = urlsplit(url).scheme
    backend = f"{mask_url(url)} ({source})"
    if scheme == "s3":
        endpoint = (
            remote.get("endpointurl") or env.get("AWS_ENDPOINT_URL") or env.get("MLFLOW_S3_ENDPOINT_URL")
        )
        bucket, _ = split_bucket(url)
        err = s3_bucket(
            bucket,
            endpoint=endpoint,
            key=remote.get("access_key_id") or env.get("AWS_ACCESS_KEY_ID"),
            secret=remote.get("secret_access_key") or env.get("AWS_SECRET_ACCESS_KEY"),
            region=remote.get("region") or env.get("AWS_DEFAULT_REGION"),
        )
        at = f" at {mask_url(endpoint)}" if endpoint else ""
        return Check(part, backend, err is None, f"bucket answers{at}" if err is None else f"{err}{at}")
    if scheme in ("", "file"):
        path = Path(urlsplit(url).path if scheme else url)
        path = path if path.is_absolute() else root / ".dvc" / path
        return Check(part, backend, path.is_dir(), "folder exists" if path.is_dir() else f"{path} is missing")
    return Check(part, backend, None, "not probed")


def check_dask(env: Mapping[str, str], root: Path) -> Check:
    part = "Dask"
    address = env.get("SEGFLOW_DASK_ADDRESS")
    if not address:
        return Check(part, "LocalCluster on demand (embedded)", None, "no SEGFLOW_DASK_ADDRESS")
    from distributed import Client

    try:
        with Client(address, timeout=3, set_as_default=False) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
    except (OSError, TimeoutError) as exc:
        return Check(part, f"Dask scheduler {mask_url(address)}", False, f"no answer ({exc})")
    gpus = sum(w.get("resources", {}).get("GPU", 0) for w in workers)
    extra = f", GPU resources {gpus:g}" if gpus else ", no GPU resources"
    return Check(
        part, f"Dask scheduler {mask_url(address)}", True, f"answers: {len(workers)} worker(s){extra}"
    )


CHECKS: tuple[Callable[[Mapping[str, str], Path], Check], ...] = (
    check_mlflow_tracking,
    check_mlflow_artifacts,
    check_prefect,
    check_dvc,
    check_dask,
)


def run_checks(env: Mapping[str, str], root: Path) -> list[Check]:
    """Every part's check, in a fixed order (MLflow, Prefect, DVC, Dask)."""
    return [check(env, root) for check in CHECKS]


def thread_report(env: Mapping[str, str]) -> tuple[list[tuple[str, str]], str | None]:
    """CPU threads: the count torch would use in a segflow process here, the rule, its inputs and
    the settings (components/core/threads.py); and the error when a setting is unusable."""
    from components.core.threads import (
        OMP_THREADS_ENV,
        PROCESSES_ENV,
        THREADS_ENV,
        ThreadsSettingError,
        plan_threads,
    )

    settings = [(f"{name} (setting)", env.get(name) or "unset") for name in (THREADS_ENV, OMP_THREADS_ENV)]
    try:
        plan = plan_threads(env=env)
    except ThreadsSettingError as exc:
        return [*settings, (PROCESSES_ENV, env.get(PROCESSES_ENV) or "unset")], str(exc)
    rule = "threads = max(1, (cores - DataLoader workers) // processes); cores = min(affinity, ceil(quota))"
    rows = [("torch threads", plan.describe()), ("rule", rule), *plan.inputs(), *settings]
    return rows, None
