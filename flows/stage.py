"""Shared entry point of the stage flows (``python -m flows.<stage>``, the DVC stage commands)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

PIPELINE_RUN_ENV = "SEGFLOW_PIPELINE_FLOW_RUN_ID"


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is the whole story for the user."""
    from components.errors import UserError

    return (UserError, FileNotFoundError)


def current_flow_run_id() -> str | None:
    """Id of the Prefect flow run executing now, if any."""
    from prefect.runtime import flow_run

    rid = flow_run.id
    return str(rid) if rid else None


def pipeline_flow_run_id() -> str | None:
    """Id of the pipeline flow run that started this stage through ``dvc repro``, if any."""
    return os.environ.get(PIPELINE_RUN_ENV) or None


def main(flow_fn: Callable[..., Any]) -> None:
    """Run ``flow_fn(params_path=...)`` from the command line; user errors exit 1 with their message."""
    ap = argparse.ArgumentParser(description=(flow_fn.__doc__ or "").strip().splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = ap.parse_args()
    try:
        flow_fn(params_path=args.params)
    except user_errors() as exc:
        print(f"\nsegflow: {exc}", file=sys.stderr)
        sys.exit(1)
