"""Values set with --set for one dataset do not silently follow the user to the next."""

from __future__ import annotations

from pathlib import Path

from components.params.carry import read_record, reconcile, write_record

RAW = {
    "data": {"dir": "data/a", "classes": "auto"},
    "train": {"folds": [0], "epochs": "auto", "batch_size": 4},
    "evaluate": {"postprocess": "none", "overlap": "auto"},
}


def test_the_same_dataset_keeps_everything(tmp_path: Path) -> None:
    write_record(tmp_path, "data/a", {"train.folds": [0]}, {"train": {"folds": None}})
    assert reconcile(RAW, tmp_path, None, {"train.epochs": 3}) == ({"train.epochs": 3}, [])
    assert reconcile(RAW, tmp_path, "data/a", {}) == ({}, [])


def test_another_dataset_drops_what_set_wrote_and_lists_what_carries(tmp_path: Path) -> None:
    write_record(
        tmp_path,
        "data/a",
        {"train.folds": [0], "evaluate.postprocess": "none", "data.dir": "data/a"},
        {"train": {"folds": None}, "evaluate": {"postprocess": "cv"}},
    )
    changes, lines = reconcile(RAW, tmp_path, "data/b", {})
    assert changes == {"train.folds": None, "evaluate.postprocess": "cv"}
    assert lines[0] == (
        'another dataset: dropped what --set gave the last one: evaluate.postprocess="none" (back to '
        '"cv"), train.folds=[0] (back to null)'
    )
    # train.batch_size was the user's own edit of params.yaml: kept, and said
    assert "train.batch_size=4" in lines[1] and "train.folds" not in lines[1]


def test_a_value_given_again_or_edited_since_is_kept(tmp_path: Path) -> None:
    write_record(tmp_path, "data/a", {"train.folds": [0]}, {"train": {"folds": None}})
    assert reconcile(RAW, tmp_path, "data/b", {"train.folds": [0]})[0] == {"train.folds": [0]}
    edited = {**RAW, "train": {**RAW["train"], "folds": [1]}}
    changes, lines = reconcile(edited, tmp_path, "data/b", {})
    assert changes == {} and "train.folds=[1]" in lines[-1]


def test_no_record_drops_nothing_and_a_broken_record_is_ignored(tmp_path: Path) -> None:
    assert reconcile(RAW, tmp_path, "data/b", {})[0] == {}
    (tmp_path / ".segflow").mkdir()
    (tmp_path / ".segflow" / "run_overrides.json").write_text("{not json")
    assert read_record(tmp_path) is None


def test_the_shipped_params_yaml_carries_nothing_to_another_dataset(tmp_path: Path) -> None:
    """A new user's first ``segflow run --data`` (the shipped params.yaml, untouched) is told of no
    values of theirs: every value the file ships is segflow's default."""
    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    assert reconcile(shipped, tmp_path, "/somewhere/else", {}) == ({}, [])


def test_a_registered_model_name_set_for_one_dataset_is_not_the_next_ones(tmp_path: Path) -> None:
    """Each dataset registers under its own name: a --set name goes back to auto on another dataset
    (else the next dataset's ensemble would be compared with this one's champion)."""
    raw = {**RAW, "ensemble": {"registered_model": "covid"}}
    write_record(
        tmp_path, "data/a", {"ensemble.registered_model": "covid"}, {"ensemble": {"registered_model": "auto"}}
    )
    changes, lines = reconcile(raw, tmp_path, "data/b", {})
    assert changes == {"ensemble.registered_model": "auto"} and "registered_model" in lines[0]


def test_an_experiment_name_written_for_one_dataset_is_listed_on_the_next(tmp_path: Path) -> None:
    """tracking.experiment is the dataset's own (auto: segflow-<name>): one written into params.yaml
    by hand is kept on another dataset, and said."""
    raw = {**RAW, "tracking": {"experiment": "covid"}}
    changes, lines = reconcile(raw, tmp_path, "data/b", {})
    assert changes == {} and any('tracking.experiment="covid"' in line for line in lines)
