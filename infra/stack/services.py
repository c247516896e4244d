"""How each service of the native stack starts and when it counts as healthy.

Same services as ``infra/production/compose.yaml``, from installed binaries and packages, all on
127.0.0.1: PostgreSQL 15 (databases ``mlflow``, ``mlflow_auth``, ``prefect``), moto's S3 server
(in place of MinIO), ``mlflow server`` with basic auth, ``prefect server`` + a process worker,
a Dask scheduler and workers.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.stack import procs
from infra.stack.pg_access import check_readable, prepare_for
from infra.stack.state import REPO, Secrets, State, write_private

if TYPE_CHECKING:
    import psycopg2.extensions

BIN = Path(sys.executable).parent
DATABASES = ("mlflow", "mlflow_auth", "prefect")
MLFLOW_BUCKET = "segflow-mlflow"
DVC_BUCKET = "segflow-dvc"
WORK_POOL = os.environ.get("SEGFLOW_WORK_POOL", "segflow-gpu")
N_DASK_WORKERS = 2
# Variables of the caller that would point a service at another stack (or leak a profile).
_FOREIGN = ("PREFECT_", "MLFLOW_", "AWS_", "DASK_", "SEGFLOW_DASK", "PG")


@dataclass(frozen=True)
class Stack:
    """What every start step needs: the state folder, ports and credentials."""

    state: State
    ports: Mapping[str, int]
    secrets: Secrets

    def pg_url(self, db: str, driver: str = "postgresql") -> str:
        s = self.secrets
        return f"{driver}://{s.pg_user}:{s.pg_password}@127.0.0.1:{self.ports['postgres']}/{db}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.ports['prefect']}/api"

    @property
    def dask_address(self) -> str:
        return f"tcp://127.0.0.1:{self.ports['dask']}"

    def base_env(self, **extra: str) -> dict[str, str]:
        """The caller's environment without other stacks' settings, plus quiet defaults."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env.update(
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DVC_NO_ANALYTICS="1",
            NO_ALBUMENTATIONS_UPDATE="1",
            MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        )
        env.update(extra)
        return env

    def s3_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.secrets.aws_key,
            "AWS_SECRET_ACCESS_KEY": self.secrets.aws_secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.s3_url,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
        }

    def client_env(self) -> dict[str, str]:
        """What a client needs to use the stack (the names infra/production/.env.example uses);
        the Prefect worker and Dask workers get it too, so flow runs log to the same MLflow."""
        s = self.secrets
        return {
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": s.mlflow_admin,
            "MLFLOW_TRACKING_PASSWORD": s.mlflow_password,
            **self.s3_env(),
            "PREFECT_API_URL": self.prefect_api,
            "SEGFLOW_WORK_POOL": WORK_POOL,
            "SEGFLOW_DVC_REMOTE": f"s3://{DVC_BUCKET}/dvc",
            "SEGFLOW_DASK_ADDRESS": self.dask_address,
            "SEGFLOW_STACK_DIR": str(self.state.root),
        }

    def launch(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        log, pid_file = self.state.log(name), self.state.pid(name)
        procs.start(name, argv, env=env, log=log, pid_file=pid_file, cwd=cwd, user=user)

    def wait(
        self, name: str, ready: Callable[[], bool], timeout: float, what: str = "did not become healthy"
    ) -> None:
        """Poll ``ready`` (raises ServiceError naming the service and its log on timeout)."""
        procs.wait_until(
            name,
            ready,
            log=self.state.log(name),
            pid_file=self.state.pid(name),
            timeout=timeout,
            what=what,
        )


# --- PostgreSQL ------------------------------------------------------------------------------


def pg_bin() -> Path:
    """The PostgreSQL binaries: ``$SEGFLOW_PG_BIN``, else the newest /usr/lib/postgresql/*/bin,
    else the folder of ``initdb`` on PATH."""
    if env := os.environ.get("SEGFLOW_PG_BIN"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    if which := shutil.which("initdb"):
        return Path(which).parent
    raise procs.ServiceError(
        "postgres: no initdb found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "install PostgreSQL 15 or set SEGFLOW_PG_BIN to its bin folder"
    )


def pg_user() -> str | None:
    """The user postgres runs as: None (ourselves) unless we are root, which postgres refuses."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("SEGFLOW_PG_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        name = "nobody"
    return name


def start_postgres(stack: Stack) -> None:
    """initdb once (scram-sha-256, TCP on 127.0.0.1 only, no unix socket), then ``postgres``.

    Under root PostgreSQL runs as its own user (:func:`pg_user`), which must reach and own the
    data folder: checked as that user first, so a state folder it cannot use is refused before
    anything starts, with the change that fixes it.
    """
    state, user, bindir = stack.state, pg_user(), pg_bin()
    data = state.pg_data
    data.parent.mkdir(parents=True, exist_ok=True)
    if user:
        prepare_for(user, state)
    if not (data / "PG_VERSION").is_file():
        pwfile = data.parent / "initdb.pw"
        write_private(pwfile, stack.secrets.pg_password + "\n")
        argv = [str(bindir / "initdb"), "-D", str(data), "-U", stack.secrets.pg_user, "-A", "scram-sha-256"]
        argv += ["-E", "UTF8", "--no-instructions", f"--pwfile={pwfile}"]
        log = state.log("postgres-initdb")
        try:
            if user:
                shutil.chown(pwfile, user)
                check_readable(user, pwfile)
            with log.open("ab") as out:
                rc = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, cwd=data.parent, **procs.as_user(user)
                ).returncode
        finally:
            pwfile.unlink(missing_ok=True)  # the password never stays on disk
        if rc != 0:
            raise procs.ServiceError(
                f"postgres: initdb failed (exit {rc}); see its log {log}\n{procs.tail(log)}"
            )
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(stack.ports["postgres"])]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
    stack.launch("postgres", argv, stack.base_env(), cwd=data.parent, user=user)


def _pg_connect(stack: Stack, db: str = "postgres") -> psycopg2.extensions.connection:
    import psycopg2

    s = stack.secrets
    return psycopg2.connect(
        host="127.0.0.1", port=stack.ports["postgres"], user=s.pg_user, password=s.pg_password,
        dbname=db, connect_timeout=2,
    )  # fmt: skip


def postgres_ready(stack: Stack) -> bool:
    import psycopg2

    try:
        _pg_connect(stack).close()
    except psycopg2.OperationalError:
        return False
    return True


def create_databases(stack: Stack) -> None:
    """Create the databases the servers use (each once)."""
    conn = _pg_connect(stack)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    with conn.cursor() as cur:
        for db in DATABASES:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()


# --- S3 (moto) ------------------------------------------------------------------------------------


def start_s3(stack: Stack) -> None:
    """moto's standalone server; its objects live in memory (see infra/production for MinIO)."""
    argv = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(stack.ports["s3"])]
    stack.launch("s3", argv, stack.base_env())


def s3_ready(stack: Stack) -> bool:
    return procs.http_status(stack.s3_url + "/", timeout=1) is not None


def s3_client(stack: Stack) -> Any:
    import boto3

    s = stack.secrets
    return boto3.client(
        "s3", endpoint_url=stack.s3_url, aws_access_key_id=s.aws_key,
        aws_secret_access_key=s.aws_secret, region_name="us-east-1",
    )  # fmt: skip


def create_buckets(stack: Stack) -> None:
    client = s3_client(stack)
    have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
        if bucket not in have:
            client.create_bucket(Bucket=bucket)


# --- MLflow ---------------------------------------------------------------------------------------


def start_mlflow(stack: Stack) -> None:
    """``mlflow server --app-name basic-auth``: Postgres backend, artifacts proxied to S3.

    The admin user is created by MLflow at its first start from the auth ini (0600, in the
    state folder); the backend URI travels in the environment, not on the command line.
    """
    s = stack.secrets
    ini = stack.state.root / "mlflow" / "basic_auth.ini"
    write_private(
        ini,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {stack.pg_url('mlflow_auth', 'postgresql+psycopg2')}\n"
        f"admin_username = {s.mlflow_admin}\n"
        f"admin_password = {s.mlflow_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )
    env = stack.base_env(
        MLFLOW_BACKEND_STORE_URI=stack.pg_url("mlflow", "postgresql+psycopg2"),
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_FLASK_SERVER_SECRET_KEY=s.flask_secret,
        # The GenAI job runner (8 huey processes) is not used by segflow; off saves CPU and RAM.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        **stack.s3_env(),
    )
    argv = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(stack.ports["mlflow"])]
    argv += ["--workers", "1", "--serve-artifacts", "--artifacts-destination", f"s3://{MLFLOW_BUCKET}"]
    argv += ["--app-name", "basic-auth"]
    stack.launch("mlflow", argv, env, cwd=stack.state.root / "mlflow")


def mlflow_ready(stack: Stack) -> bool:
    return procs.http_status(stack.mlflow_url + "/health", timeout=1) == 200


# --- Prefect --------------------------------------------------------------------------------------


def start_prefect(stack: Stack) -> None:
    home = stack.state.root / "prefect"
    env = stack.base_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=stack.pg_url("prefect", "postgresql+asyncpg"),
    )
    argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
    argv += ["--port", str(stack.ports["prefect"])]
    stack.launch("prefect-server", argv, env, cwd=stack.state.root)


def prefect_ready(stack: Stack) -> bool:
    return procs.http_status(stack.prefect_api + "/health", timeout=1) == 200


def prefect_client_env(stack: Stack) -> dict[str, str]:
    return stack.base_env(
        PREFECT_API_URL=stack.prefect_api, PREFECT_HOME=str(stack.state.root / "prefect-client")
    )


def start_prefect_worker(stack: Stack) -> None:
    """``prefect worker start`` on the pool; flow runs start in the project checkout.

    prefect.yaml's pull step enters ``$SEGFLOW_PROJECT_DIR`` (resolved in the flow run, from the
    worker's env): the caller's, else this repo. With ``--type process`` the worker creates the
    pool (with Prefect's default process job template) when it does not exist yet.
    """
    env = prefect_client_env(stack)
    env.update(stack.client_env())
    env.setdefault("SEGFLOW_PROJECT_DIR", str(REPO))
    argv = [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"]
    argv += ["--name", f"segflow-worker-{os.uname().nodename}"]
    stack.launch("prefect-worker", argv, env, cwd=REPO)


def prefect_worker_online(stack: Stack) -> bool:
    """Whether a worker of the pool has sent a heartbeat (status ONLINE) to the API."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{stack.prefect_api}/work_pools/{WORK_POOL}/workers/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            workers = json.loads(r.read())
    except OSError:
        return False
    return any(w.get("status") == "ONLINE" for w in workers)


# --- Dask -----------------------------------------------------------------------------------------


def gpu_count() -> int:
    """GPUs on this host: ``$SEGFLOW_STACK_GPUS``, else ``nvidia-smi -L`` lines, else 0."""
    if env := os.environ.get("SEGFLOW_STACK_GPUS"):
        return int(env)
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def start_dask_scheduler(stack: Stack) -> None:
    argv = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(stack.ports["dask"])]
    # Without bokeh there is no dashboard, but the HTTP server (/health, /metrics) still binds the
    # dashboard address, by default on all interfaces: keep it on loopback.
    argv += ["--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--no-show"]
    stack.launch("dask-scheduler", argv, stack.base_env(), cwd=stack.state.root)


def dask_worker_names() -> list[str]:
    return [f"dask-worker-{i}" for i in range(N_DASK_WORKERS)]


def start_dask_workers(stack: Stack, names: list[str]) -> None:
    """One single-threaded worker per fold slot. With GPUs, worker ``i`` sees GPU ``i % n`` only
    and declares ``GPU=1`` (fold tasks ask ``resources={"GPU": 1}``); on CPU hosts nothing is
    declared (a GPU request would never be scheduled) and one thread per worker already
    means one fold per worker at a time."""
    n_gpus = gpu_count()
    for name in names:
        index = int(name.rsplit("-", 1)[1])
        env = stack.base_env(**stack.client_env())
        argv = [str(BIN / "dask"), "worker", stack.dask_address, "--host", "127.0.0.1", "--name", name]
        argv += ["--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
        argv += ["--local-directory", str(stack.state.root / "dask" / name)]
        if n_gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % n_gpus)
            argv += ["--resources", "GPU=1"]
        stack.launch(name, argv, env, cwd=REPO)


def dask_workers_connected(stack: Stack) -> int:
    """How many workers the scheduler has (0 when it does not answer)."""
    from distributed import Client

    try:
        with Client(stack.dask_address, timeout=3) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])
    except (OSError, TimeoutError):
        return 0
