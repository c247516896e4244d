"""A broken dataset stops `dvc repro` at validate, names every bad file and writes nothing downstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.broken import write_broken_dataset
from tests.integration.conftest import BIN, run

pytestmark = pytest.mark.slow


def test_validate_stops_on_broken_dataset(project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = project
    from components.params.edit import apply_overrides

    data = tmp_path / "broken"
    expected = write_broken_dataset(data)
    apply_overrides(root / "params.yaml", {"data.dir": str(data), "data.classes": {"background": 0, "fg": 1}})

    proc = run([str(BIN / "dvc"), "repro"], root, env, check=False)

    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    for check, files in expected.items():
        assert check in message, (check, message[-3000:])
        for f in files:
            assert f in message, (f, message[-3000:])
    assert (root / "reports/validation/result.json").is_file()  # the GX result is kept for the user
    for downstream in (
        "data/manifest.parquet",
        "data/prepared",
        "models",
        "reports/cv",
        "reports/test",
        "dvc.lock",
    ):
        assert not (root / downstream).exists(), downstream
