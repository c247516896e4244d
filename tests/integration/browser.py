"""A real browser for the tests: Debian's Chromium, headless, driven by Playwright; an MLflow UI server.

Chromium comes from the OS package manager (`make browser`, which `.ci/run` calls). Where it is
missing the browser tests skip, unless ``SEGFLOW_REQUIRE_BROWSER=1`` (CI) turns that into a failure.
Screenshots go to ``SEGFLOW_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the repository).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BIN, REPO, _free_port, _interrupt

REQUIRE_ENV = "SEGFLOW_REQUIRE_BROWSER"
ARTIFACTS_ENV = "SEGFLOW_TEST_ARTIFACTS"
# Chromium on a closed network: no background connections (they are refused, many at a time).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    """Path of the Chromium binary (``SEGFLOW_CHROMIUM`` or the one on PATH)."""
    return os.environ.get("SEGFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def artifacts_dir() -> Path:
    """Where screenshots are kept (created)."""
    path = Path(os.environ.get(ARTIFACTS_ENV) or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``); skips (or fails under CI) when none is installed."""
    exe = chromium()
    if exe is None:
        msg = "no Chromium installed: run `make browser` (apt-get install chromium)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def offline_page(b: Any, viewport: tuple[int, int] = (1200, 860)) -> Iterator[tuple[Any, list[str]]]:
    """A page in a context with the network switched off; yields it and the non-file URLs it requested."""
    ctx = b.new_context(offline=True, viewport={"width": viewport[0], "height": viewport[1]})
    page = ctx.new_page()
    requested: list[str] = []
    page.on(
        "request", lambda r: requested.append(r.url) if not r.url.startswith(("file:", "data:")) else None
    )
    try:
        yield page, requested
    finally:
        ctx.close()


def computed(page: Any, selector: str, prop: str) -> str:
    """The computed CSS value of ``prop`` on the first element matching ``selector``."""
    return str(page.eval_on_selector(selector, "(el, p) => getComputedStyle(el).getPropertyValue(p)", prop))


def screenshot(page: Any, name: str) -> Path:
    """Keep a PNG of the page's viewport as a test artifact."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def mlflow_ui(store_uri: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 over ``store_uri``; yields its base URL, stops it after."""
    port = _free_port()
    log_path = cwd / "mlflow_ui.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                store_uri,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"mlflow server did not start: {log_path.read_text()[-2000:]}")
                    time.sleep(1)
            yield base
        finally:
            _interrupt(proc)
