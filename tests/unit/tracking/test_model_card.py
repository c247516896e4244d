"""The model version's registry description: the facts, rendered, and written to a real registry."""

from __future__ import annotations

import uuid
from pathlib import Path

from components.tracking.lineage import TAG_DATA, TAG_GIT, TAG_PARAMS
from components.tracking.model_card import CardFacts, model_card_markdown, publish_model_card
from components.tracking.promotion import Registration
from components.tracking.tracker import Tracker

CI = {"mean": 0.9, "sd": 0.05, "ci_low": 0.85, "ci_high": 0.93}


def facts(name: str = "card-model", alias: str = "champion", comparison: dict | None = None) -> CardFacts:
    stats = {"per_class": {"organ": {"dice": CI, "hd95": {"mean": 2.5, "ci_low": 2.0, "ci_high": 3.25}}}}
    cv = {
        **stats,
        "fold_mean_sd": {"organ": {"dice": {"mean": 0.88, "sd": 0.02}, "hd95": {"mean": 3.0, "sd": None}}},
    }
    return CardFacts(
        Registration(name, "3", alias, 0.8765, 0.8, "test Dice 0.8765 >= champion v2 0.8000"),
        ["background", "organ"],
        1,
        {"size": [64, 64], "spatial_mode": "resize", "intensity_method": "minmax"},
        cv,
        stats,
        comparison,
        {TAG_DATA: "abc123.dir", TAG_PARAMS: "f00d", TAG_GIT: "deadbeef"},
        [0, 1, 2],
        True,
        60,
        12,
        "px",
    )


def test_card_states_the_numbers_gate_and_lineage() -> None:
    comparison = {
        "all": {
            "dice": {
                "mean_diff": 0.0123,
                "ci_low": -0.01,
                "ci_high": 0.03,
                "wilcoxon_p": 0.2,
                "ttest_p": 0.25,
            }
        }
    }
    md = model_card_markdown(facts(comparison=comparison))
    assert "## card-model v3 — `champion`" in md
    assert "**Gate:** test Dice 0.8765 >= champion v2 0.8000." in md
    assert "| organ | 0.880 ± 0.020 (cases: 0.900 [0.850, 0.930]) | 0.900 [0.850, 0.930] " in md
    assert "| 3.000 (cases: 2.500 [2.000, 3.250]) | 2.500 [2.000, 3.250] |" in md  # one fold: no sd
    assert "brought to 64x64 (resize, intensity minmax)" in md
    assert "mean Dice difference 0.012 [-0.010, 0.030], Wilcoxon p = 0.200" in md
    assert "Test mean foreground Dice **0.8765** on 12 held-out cases." in md
    for text in ("`abc123.dir`, 60 cases", "folds [0, 1, 2]", "mirroring TTA", "`f00d`", "`deadbeef`"):
        assert text in md
    assert "previous champion" not in model_card_markdown(facts())


def test_publish_writes_version_model_and_alias_reason(tracker: Tracker, tmp_path: Path) -> None:
    name = f"card-{uuid.uuid4().hex[:8]}"
    (tmp_path / "m").mkdir()
    client = tracker.client
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, str(tmp_path / "m"))
    md = publish_model_card(tracker, facts(name))
    assert client.get_model_version(name, "3").description == md
    model = client.get_registered_model(name)
    assert model.description == md
    assert model.tags["segflow.champion_reason"] == "v3: test Dice 0.8765 >= champion v2 0.8000"
    publish_model_card(tracker, facts(name, alias="challenger"))  # a challenger leaves the model's text
    assert client.get_registered_model(name).description == md
    assert client.get_registered_model(name).tags["segflow.challenger_reason"].startswith("v3: ")
