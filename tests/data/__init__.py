"""Test data: broken datasets, near-duplicate sets, and the hand-set params many tests start from."""

from pathlib import Path

# every key explicit (segflow's params before the plan stage): tests that need concrete values
# without running the plan start from it; the shipped params.yaml leaves most keys to the plan
HANDSET_PARAMS = Path(__file__).resolve().parent / "handset_params.yaml"
