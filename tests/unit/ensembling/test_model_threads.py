"""The packaged model loaded by a plain MLflow client in a fresh process: the OpenMP wait policy is
set before the model imports torch, and torch takes the threads rule's count
(components/core/threads.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components.core.threads import usable_cores
from components.ensembling.packaging import save_ensemble_model
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

CLIENT = """
import json, os, sys
import mlflow.pyfunc
assert "torch" not in sys.modules
model = mlflow.pyfunc.load_model(sys.argv[1])
import torch
print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads()}))
"""


def test_a_plain_mlflow_client_gets_the_passive_policy_and_the_rules_threads(tmp_path: Path) -> None:
    spec = PreprocessSpec((32, 32), "resize", "minmax", {}, 1)
    mspec = ModelSpec("unet", 1, 2, {"base_channels": 4, "depth": 2})
    save_checkpoint(tmp_path / "fold_0.pt", mspec.build().eval(), mspec, spec, {"fold": 0})
    save_ensemble_model(tmp_path / "model", [tmp_path / "fold_0.pt"], False, ["bg", "fg"], 1)
    drop = {"OMP_WAIT_POLICY", "OMP_NUM_THREADS", "SEGFLOW_THREADS", "SEGFLOW_PROCESSES"}
    env = {k: v for k, v in os.environ.items() if k not in drop} | {"SEGFLOW_PROCESSES": "2"}
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, str(tmp_path / "model")],
        cwd=tmp_path,  # not the repository: the model's own copy of components is imported
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"policy": "PASSIVE", "threads": max(1, usable_cores() // 2)}
