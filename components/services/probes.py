"""Small network probes with short timeouts, and credential masking for what is printed."""

from __future__ import annotations

import base64
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 3.0
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def mask_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (safe to print)."""
    return _USERINFO.sub("***@", url)


@dataclass(frozen=True)
class HttpAnswer:
    """The outcome of one request: ``status`` None when nothing answered (``error`` says why)."""

    status: int | None
    ms: float
    body: bytes = b""
    error: str = ""

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status} in {self.ms:.0f} ms"


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP basic auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def http(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = TIMEOUT_S,
) -> HttpAnswer:
    """GET (or POST when ``data`` is given) ``url``; any HTTP status counts as an answer."""
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HttpAnswer(int(r.status), (time.perf_counter() - t0) * 1000, r.read())
    except urllib.error.HTTPError as exc:
        return HttpAnswer(int(exc.code), (time.perf_counter() - t0) * 1000)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return HttpAnswer(None, (time.perf_counter() - t0) * 1000, error=str(reason))


def tcp(host: str, port: int, timeout: float = TIMEOUT_S) -> str | None:
    """None when ``host:port`` accepts a connection, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc)


def s3_bucket(
    bucket: str,
    *,
    endpoint: str | None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
) -> str | None:
    """None when ``bucket`` can be listed with these credentials (boto3's defaults where None),
    else the reason (the endpoint, never the credentials)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client: Any = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S, retries={"max_attempts": 1}),
    )
    try:
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except ClientError as exc:
        return f"bucket {bucket!r}: {exc.response.get('Error', {}).get('Code', 'error')}"
    except BotoCoreError as exc:
        return f"{type(exc).__name__}: {mask_url(str(exc))}"
    return None


def split_bucket(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``("bucket", "prefix")``."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")
