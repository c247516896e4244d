"""One short message on the console, the full story (tracebacks included) in a log file.

A failing ``segflow run`` or stage (``python -m flows.<stage>``) prints what went wrong, which
file or params key, a hint, and the path of its log file ``.segflow/logs/<time>-<pid>-<name>.log``;
every log record of the process (Prefect's included) and the traceback go to that file only.
:class:`ConsoleFilter` keeps the engine's failure records (each of them a traceback or a repr of
the whole message) off the console handlers; they still reach the file and Prefect's API.

When a stage runs under ``segflow run`` (through ``dvc repro``), the pipeline names a failure file
in ``SEGFLOW_FAILURE_FILE``: the stage writes its message there (:func:`write_failure`) instead of
printing it, and the pipeline prints it once.

Plain ``logging`` only (no Prefect import), so the CLI, the stages and tests share it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_DIR = Path(".segflow") / "logs"
FAILURE_FILE_ENV = "SEGFLOW_FAILURE_FILE"
KEEP_LOGS = 100  # newest log files kept per workspace
_FAILURE_PREFIXES = (
    "Finished in state Failed",
    "Finished in state Crashed",
    "Task run failed with exception",
    "Encountered exception during execution",
)
# Prefect's notice, once per process that starts a temporary API server (every stage of a plain
# `dvc repro`): nothing a user can act on; the log file keeps it.
_NOTICE_PREFIXES = ("Starting temporary server on",)


def new_log_path(name: str, root: Path | None = None) -> Path:
    """A fresh log file path ``<root>/.segflow/logs/<UTC time>-<pid>-<name>.log`` (folder created).

    Entries older than the newest :data:`KEEP_LOGS` (log files, and the folders where a failed run
    kept what its failed stage wrote) are removed; their names start with the time, so they sort.
    """
    folder = (root or Path()) / LOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(p for p in folder.iterdir() if p.suffix == ".log" or p.is_dir())
    for old in entries[: max(0, len(entries) - KEEP_LOGS + 1)]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return folder / f"{stamp}-{os.getpid()}-{name}.log"


class ConsoleFilter(logging.Filter):
    """Drop records that carry a traceback, the engine's failure records and Prefect's temporary
    server notice from a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        message = record.getMessage()
        if message.startswith(_FAILURE_PREFIXES + _NOTICE_PREFIXES):
            return False
        return not (record.levelno >= logging.ERROR and record.name.startswith("prefect"))


def _console_handlers() -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    found: list[logging.Handler] = []
    for lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
                continue
            if handler not in found:  # a stream handler: the console (or pytest's capture of it)
                found.append(handler)
    return found


def capture_to_file(path: Path) -> logging.Handler:
    """Send every log record of this process to ``path`` and keep tracebacks off the console.

    Call it after the logging setup of the libraries (Prefect configures logging at import).

    Returns:
        The file handler (attached to the root logger).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s - %(message)s"))
    logging.getLogger().addHandler(handler)
    for console in _console_handlers():
        if not any(isinstance(f, ConsoleFilter) for f in console.filters):
            console.addFilter(ConsoleFilter())
    return handler


def log_exception(path: Path, exc: BaseException, what: str) -> None:
    """Append ``what`` and the traceback of ``exc`` to the log file ``path``."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"\n=== {what} ===\n{text}")


def write_failure(path: Path, stage: str, message: str, log: Path) -> None:
    """Record a stage's failure for the pipeline that started it (JSON, written atomically)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"stage": stage, "message": message, "log": str(log)}))
    os.replace(tmp, path)


def read_failure(path: Path) -> dict[str, Any] | None:
    """What :func:`write_failure` recorded, or None when nothing (valid) was written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "message" in data else None


def describe(exc: BaseException, user_error: bool) -> str:
    """The console text for an exception: a user error's own message, else its type and message."""
    if user_error:
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
