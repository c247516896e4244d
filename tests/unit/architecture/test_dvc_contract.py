"""dvc.yaml agrees with the code: outputs are components/core/layout.py's paths, and deps cover every
module each stage imports (transitively, lazy imports included), so a code change re-runs the
stages it affects and no other."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from components.core import layout
from components.ensembling.packaging import COMPONENTS_DIR
from tests.unit.architecture.import_graph import REPO, closure, import_graph, module_files

STAGES = ("validate", "plan", "preprocess", "train", "evaluate", "ensemble")


def load_dvc_yaml(path: Path = REPO / "dvc.yaml") -> dict[str, Any]:
    """The parsed dvc.yaml."""
    return yaml.safe_load(path.read_text())


def _paths(entries: Sequence[Any]) -> list[str]:
    """Paths of a deps/outs/metrics list (entries are strings or ``{path: {options}}``)."""
    return [str(next(iter(e))) if isinstance(e, Mapping) else str(e) for e in entries]


def stage_files(stage: str, repo: Path = REPO) -> set[Path]:
    """Every project file that runs when ``python -m flows.<stage>`` runs (relative to ``repo``)."""
    files = module_files(repo)
    mods = closure(import_graph(repo), f"flows.{stage}")
    out = {files[m].relative_to(repo) for m in mods}
    if stage == "ensemble":  # the packaged model ships the whole components/ folder as its code
        out |= {p.relative_to(repo) for p in COMPONENTS_DIR.rglob("*.py")}
    return out


def uncovered(files: set[Path], deps: Sequence[str]) -> list[str]:
    """Files that no dep (a file, or a folder above it) covers."""
    dep_paths = [Path(d.rstrip("/")) for d in deps]
    return sorted(str(f) for f in files if not any(f == d or d in f.parents for d in dep_paths))


def contract_violations(dvc: Mapping[str, Any]) -> list[str]:
    """Every disagreement between ``dvc`` (a parsed dvc.yaml) and the code/layout."""
    problems: list[str] = []
    stages = dvc.get("stages", {})
    if sorted(stages) != sorted(STAGES):
        problems.append(f"stages {sorted(stages)} != {sorted(STAGES)}")
    expected_outputs = layout.stage_outputs()
    for name in STAGES:
        stage = stages.get(name, {})
        if stage.get("cmd") != f"python -m flows.{name}":
            problems.append(f"{name}: cmd {stage.get('cmd')!r} is not 'python -m flows.{name}'")
        for kind in ("outs", "metrics"):
            got = sorted(_paths(stage.get(kind, [])))
            want = sorted(p.as_posix() for p in expected_outputs[name][kind])
            if got != want:
                problems.append(f"{name}: {kind} {got} != layout {want}")
        for missing in uncovered(stage_files(name), _paths(stage.get("deps", []))):
            problems.append(f"{name}: imports {missing} but no dep covers it")
    return problems


def unlisted_reads(reads: Sequence[Mapping[str, str]], dvc: Mapping[str, Any]) -> list[str]:
    """Params keys a stage read (``{"stage", "key"}`` records) that its ``params:`` list misses.

    A listed key covers itself and everything below it (``train`` covers ``train.epochs``).
    """
    stages = dvc.get("stages", {})
    out = set()
    for r in reads:
        listed = _listed_keys(stages.get(r["stage"], {}).get("params", []))
        if not any(r["key"] == k or r["key"].startswith(k + ".") for k in listed):
            out.add(f"{r['stage']} reads {r['key']} but dvc.yaml does not list it")
    return sorted(out)


def _listed_keys(entries: Sequence[Any]) -> list[str]:
    """Keys of a ``params:`` list: plain entries (params.yaml) and those under ``plans/params.yaml``,
    the resolved params, whose keys are params.yaml's own."""
    keys: list[str] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            for values in entry.values():
                keys += [str(k) for k in values]
        else:
            keys.append(str(entry))
    return keys


def missing_params(dvc: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """Keys listed under a stage's ``params:`` that params.yaml lacks (DVC refuses to run then)."""
    out = []
    for name, stage in dvc.get("stages", {}).items():
        for key in _listed_keys(stage.get("params", [])):
            node: Any = params
            for part in str(key).split("."):
                if not isinstance(node, Mapping) or part not in node:
                    out.append(f"{name}: {key}")
                    break
                node = node[part]
    return out


def test_every_listed_param_is_in_params_yaml() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert missing_params(load_dvc_yaml(), params) == []
    assert missing_params({"stages": {"x": {"params": ["train.nope", "data.dir"]}}}, params) == [
        "x: train.nope"
    ]


def test_dvc_yaml_matches_layout_and_imports() -> None:
    assert contract_violations(load_dvc_yaml()) == []


def test_the_check_fails_on_a_broken_copy() -> None:
    """A stage whose deps miss a module it imports, or whose outs differ from the layout, is caught."""
    broken = copy.deepcopy(load_dvc_yaml())
    deps = broken["stages"]["train"]["deps"]
    deps.remove("components/params/config.py")
    deps.remove("components/training/loop.py")
    broken["stages"]["evaluate"]["outs"].append("reports/cv/extra.csv")
    problems = contract_violations(broken)
    assert "train: imports components/params/config.py but no dep covers it" in problems
    assert "train: imports components/training/loop.py but no dep covers it" in problems
    assert any(p.startswith("evaluate: outs") for p in problems)
    assert not any(p.startswith(("validate", "preprocess", "ensemble")) for p in problems)


def test_lazy_imports_count() -> None:
    """A module imported only inside a function still runs in the stage, so it must be a dep."""
    files = stage_files("validate")
    assert (
        Path("components/core/errors.py") in files
    )  # flows/runtime/stage.py imports it inside user_errors()
    assert Path("components/core/layout.py") in files


def test_unlisted_reads_are_reported() -> None:
    dvc = {"stages": {"train": {"params": ["data.classes", "train"]}}}
    reads = [
        {"stage": "train", "key": "train.epochs"},
        {"stage": "train", "key": "data.classes"},
        {"stage": "train", "key": "preprocess.image_size"},
        {"stage": "train", "key": "*"},
        {"stage": "evaluate", "key": "evaluate.connectivity"},
    ]
    assert unlisted_reads(reads, dvc) == [
        "evaluate reads evaluate.connectivity but dvc.yaml does not list it",
        "train reads * but dvc.yaml does not list it",
        "train reads preprocess.image_size but dvc.yaml does not list it",
    ]
