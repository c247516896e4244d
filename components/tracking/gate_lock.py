"""One promotion gate at a time per registered model: a lock chosen from the tracking URI.

MLflow has no compare-and-set for aliases, so "read the champion -> compare -> set the alias" of
two ensembles registering at once could both read "no champion" (or the same old one) and both
set ``champion``, leaving the alias on whichever wrote last. The gate holds this lock around that
sequence. Each backend uses a lock of an engine it already has, released by that engine when the
holder dies (no stale locks, nothing to clean up):

| tracking (registry) URI | lock |
|---|---|
| ``sqlite:///dir/mlflow.db`` | ``fcntl.flock`` on ``dir/.segflow/gate-mlflow.db-<model>.lock`` |
| a file store (``file:///dir``, ``./mlruns``) | ``fcntl.flock`` on ``dir/.segflow-gate-<model>.lock`` |
| ``postgresql://...`` | ``pg_try_advisory_lock(<64-bit key>)`` on a session of that database |
| ``mysql://...`` | ``GET_LOCK('segflow-gate:<model hash>', 0)`` on a session of that database |
| ``http(s)://`` (an MLflow server) | the lock ``SEGFLOW_GATE_LOCK_URL`` names (see below) |

``SEGFLOW_GATE_LOCK_URL`` (one of the rows above: e.g. the server's own Postgres, or
``file:///shared/dir``) overrides the choice for every URI; an http(s) URI without it gets a
host-local file lock, with a warning.

An http client cannot reach the server's database by itself, and MLflow's REST API has no lock,
so a multi-host deployment points ``SEGFLOW_GATE_LOCK_URL`` at the server's backend database. (A
Prefect global concurrency limit would also do, but components are plain Python; and with the
pinned Prefect ``concurrency(..., strict=False)`` silently does not limit when the limit was never
created.) The lock is re-entrant in one process and excludes other threads of it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

LOCK_URL_ENV = "SEGFLOW_GATE_LOCK_URL"
TIMEOUT_ENV = "SEGFLOW_GATE_LOCK_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 3600.0
_POLL_S = 0.05
_TELL_AFTER_S = 10.0

_log = logging.getLogger(__name__)
_local: dict[str, tuple[threading.RLock, list[int]]] = {}  # lock id -> (thread lock, [depth])
_local_guard = threading.Lock()


class GateLockError(RuntimeError):
    """The gate lock could not be taken (timeout, or no lock for this tracking URI)."""


def _key(model: str) -> str:
    return hashlib.sha256(f"segflow-gate:{model}".encode()).hexdigest()[:16]


def redact(url: str) -> str:
    """``url`` without its password (for messages: credentials never go to logs)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for an in-memory database)."""
    rest = uri.split("://", 1)[1]  # "/relative.db", "//abs.db", "" (memory)
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    return Path(unquote(path)).resolve() if path and path != ":memory:" else None


def lock_target(uri: str, model: str) -> tuple[str, str]:
    """Which lock guards ``model``'s gate for a tracking URI: ``(kind, where)``.

    ``kind`` is ``"file"`` (``where`` = the lock file), ``"postgresql"`` or ``"mysql"`` (``where``
    = the database URL). ``SEGFLOW_GATE_LOCK_URL``, when set, names the lock for every URI.
    """
    explicit = os.environ.get(LOCK_URL_ENV, "").strip()
    url = explicit or uri
    scheme = urlparse(url).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        db = _sqlite_path(url)
        folder = db.parent if db else Path(tempfile.gettempdir())
        # beside the database, in the (git-ignored) .segflow/ folder that also holds the workspace lock
        return "file", str(folder / ".segflow" / f"gate-{db.name if db else 'memory'}-{_key(model)}.lock")
    if scheme in ("postgresql", "postgres", "mysql"):
        return ("mysql" if scheme == "mysql" else "postgresql"), url
    if scheme in ("", "file"):
        folder = Path(unquote(urlparse(url).path) if scheme == "file" else url).resolve()
        return "file", str(folder / f".segflow-gate-{_key(model)}.lock")
    if explicit:
        raise GateLockError(
            f"{LOCK_URL_ENV}={redact(explicit)}: not a lock this gate knows; use postgresql://..., "
            "mysql://..., sqlite:///... or file:///shared/folder"
        )
    _log.warning(
        "tracking URI %s: the promotion gate is serialised only on this host; set %s to the "
        "tracking server's database (postgresql://...) or a shared folder (file:///...) to "
        "serialise it across hosts",
        redact(uri),
        LOCK_URL_ENV,
    )
    host = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return "file", str(Path(tempfile.gettempdir()) / f"segflow-gate-{host}-{_key(model)}.lock")


def _wait(try_once: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Call ``try_once`` until it returns True or ``timeout_s`` passes."""
    start = time.monotonic()
    deadline, told = start + timeout_s, False
    while not try_once():
        if not told and time.monotonic() - start > _TELL_AFTER_S:  # a silent wait looks like a hang
            _log.warning("waiting for the promotion gate lock (%s): another registration holds it", what)
            told = True
        if time.monotonic() > deadline:
            raise GateLockError(
                f"waited {timeout_s:.0f} s for the promotion gate lock ({what}); another "
                f"registration holds it (raise {TIMEOUT_ENV} to wait longer)"
            )
        time.sleep(_POLL_S)


@contextlib.contextmanager
def _file_lock(path: str, timeout_s: float) -> Iterator[None]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _wait(try_once, f"file lock {path}", timeout_s)
        yield  # closing the descriptor releases it (the kernel does so too when the process dies)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _database_lock(kind: str, url: str, model: str, timeout_s: float) -> Iterator[None]:
    """A session-level advisory lock: the server drops it when the session ends or dies."""
    import sqlalchemy as sa

    key = _key(model)
    if kind == "postgresql":
        take = sa.text("SELECT pg_try_advisory_lock(CAST(:k AS bigint))")
        give = sa.text("SELECT pg_advisory_unlock(CAST(:k AS bigint))")
        args: dict[str, object] = {"k": int(key, 16) - (1 << 63)}  # signed 64-bit
    else:
        take, give = sa.text("SELECT GET_LOCK(:k, 0)"), sa.text("SELECT RELEASE_LOCK(:k)")
        args = {"k": f"segflow-gate:{key}"}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            _wait(lambda: bool(conn.execute(take, args).scalar()), f"{kind} advisory lock", timeout_s)
            try:
                yield
            finally:
                conn.execute(give, args)
    finally:
        engine.dispose()


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise GateLockError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None


@contextlib.contextmanager
def gate_lock(tracking_uri: str, model: str) -> Iterator[str]:
    """Hold the promotion-gate lock of registered model ``model`` for the block.

    Waits (up to ``SEGFLOW_GATE_LOCK_TIMEOUT_S``, default 1 h) while another process or thread
    holds it; nested use in the holding thread passes at once. Yields a description of the lock.

    Raises:
        GateLockError: Timed out, or ``SEGFLOW_GATE_LOCK_URL`` names no known lock.
    """
    kind, where = lock_target(tracking_uri, model)
    ident = f"{kind}:{where}:{_key(model)}"
    with _local_guard:
        rlock, depth = _local.setdefault(ident, (threading.RLock(), [0]))
    timeout_s = _timeout()
    if not rlock.acquire(timeout=timeout_s):
        raise GateLockError(f"waited {timeout_s:.0f} s for the promotion gate lock in this process")
    try:
        depth[0] += 1
        if depth[0] > 1:
            yield f"{kind} {redact(where)}"
            return
        inner = (
            _file_lock(where, timeout_s) if kind == "file" else _database_lock(kind, where, model, timeout_s)
        )
        with inner:
            yield f"{kind} {redact(where)}"
    finally:
        depth[0] -= 1
        rlock.release()
