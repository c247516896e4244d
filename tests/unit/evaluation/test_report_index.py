"""reports/index.html: every report of the run linked, by relative links that resolve, none to the network."""

from __future__ import annotations

import json
import re
from pathlib import Path

from components.core import layout
from components.evaluation.report_index import write_report_index
from components.validation.offline_docs import external_references

HEADLINE = {
    "organ": {"dice": {"mean": 0.91234, "sd": 0.0123}, "hd95": {"mean": 2.5, "sd": 0.5}},
    "lesion": {"dice": {"mean": 0.4, "sd": None}},
    "mean_foreground_dice": 0.65,
    "protocol": {"organ": {"pooled_dice": 0.93, "dice_thrmean": 0.8, "pixel_roc_auc": 0.99}},
}


def _project(root: Path) -> None:
    for report in (layout.CV_REPORTS, layout.TEST_REPORTS):
        (root / report / layout.PLOTS_DIR).mkdir(parents=True)
        (root / report / layout.HEADLINE_FILE).write_text(json.dumps(HEADLINE))
        (root / report / layout.PER_CASE_FILE).write_text("case_id,dice\n")
        (root / report / layout.PLOTS_DIR / "box_dice.png").write_bytes(b"\x89PNG")
    docs = root / layout.VALIDATION_REPORTS / "data_docs"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html></html>")
    (root / layout.VALIDATION_REPORTS / "result.json").write_text(
        json.dumps(
            {"success": True, "statistics": {"evaluated_expectations": 17, "successful_expectations": 17}}
        )
    )
    (root / layout.FINGERPRINT).write_text(
        json.dumps({"n_cases": 40, "ndim": 2, "channels": 1, "class_fractions": {"organ": 0.1}})
    )
    (root / layout.ENSEMBLE).mkdir(parents=True)
    (root / layout.REGISTRATION).write_text(
        json.dumps(
            {
                "registered_model": "seg",
                "version": "3",
                "alias": "challenger",
                "test_dice": 0.61,
                "reason": "test Dice 0.610 < champion's 0.650",
                "links": {
                    "MLflow model version (seg v3, challenger)": "http://127.0.0.1:5000/#/models/seg/versions/3"
                },
            }
        )
    )
    (root / layout.POSTPROCESSING).write_text(
        json.dumps(
            {
                "chosen_on": "20 out-of-fold case(s)",
                "candidates": [
                    {
                        "class": 1,
                        "class_name": "organ",
                        "rule": "largest_component",
                        "mean_dice": 0.92,
                        "chosen": True,
                    },
                    {"class": 1, "class_name": "organ", "rule": "none", "mean_dice": 0.91, "chosen": False},
                ],
            }
        )
    )


def test_index_links_every_report_and_resolves_offline(tmp_path: Path) -> None:
    _project(tmp_path)
    path = write_report_index(tmp_path)
    assert path == tmp_path / "reports" / "index.html"
    page = path.read_text()
    assert external_references(page) == []
    assert "seg v3" in page and "challenger" in page and "champion&#x27;s 0.650" in page
    assert "0.912 ± 0.012" in page and "0.400" in page and "n/a" in page  # sd None, metric missing
    assert "17 of 17" in page and "40 cases" in page
    assert "largest_component" in page
    assert 'href="http://127.0.0.1:5000/#/models/seg/versions/3"' in page
    local = [u for u in re.findall(r'(?:href|src)="([^"#]+)"', page) if not u.startswith("http")]
    assert "validation/data_docs/index.html" in local and "cv/plots/box_dice.png" in local
    assert "test/per_case.csv" in local
    for rel in local:
        assert (path.parent / rel).is_file(), rel  # every relative link resolves


def test_index_of_a_project_without_results_says_so(tmp_path: Path) -> None:
    page = write_report_index(tmp_path).read_text()
    assert "Not run yet." in page and "not run" in page
