"""plan stage: the dataset fingerprint, the device and the time budget -> plans/ (plan.json, plan.md and
the resolved params every later stage reads)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.core import layout
from flows.runtime.stage import run


@task(cache_policy=NO_CACHE)
def make_plan(params_path: str) -> str:
    """Plan from the validated dataset and write the plan files."""
    from components.planning.stage import plan_dataset, write_plan
    from components.preprocessing.specs import read_fingerprint
    from components.validation.manifest import read_manifest

    plan, _, texts = plan_dataset(
        Path(params_path),
        read_fingerprint(layout.FINGERPRINT),
        read_manifest(layout.MANIFEST),
        layout.PLAN_CACHE,
        Path(),
    )
    write_plan(plan, texts)
    print(plan.markdown())
    return str(layout.PLAN_JSON)


@flow(name="plan", log_prints=True)
def plan_flow(params_path: str = "params.yaml") -> str:
    """Plan every training choice for the validated dataset."""
    return make_plan(params_path)


if __name__ == "__main__":
    run(plan_flow)
