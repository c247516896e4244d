"""Test-session settings shared by every test folder."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs the property tests on a fixed example sequence, so a landing never depends on luck;
# locally hypothesis keeps exploring new examples (and stores failures in .hypothesis/).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# Stage commands a test starts (dvc repro, python -m flows.<stage>) import cold: a resident warm
# server (flows/runtime/warm_resident.py) per test project would stay behind each test for its idle
# timeout, about 1 GB each. The tests of resident servers set their own value.
os.environ["SEGFLOW_WARM_IDLE_S"] = "0"
