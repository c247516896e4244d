"""Every params key re-runs exactly the stages that read it, with the real DVC and its run cache.

A throw-away git + DVC repo gets the project's own params.yaml and a dvc.yaml built from the
project's dvc.yaml: the same stages, ``params:`` lists, outs (``cache: false`` included) and
metrics, and the same DAG (every dep that is another stage's out, and ``${data.dir}``-style deps,
which point at a small data folder), but each ``cmd`` is a cheap script that appends the stage's
name to ``runs.log`` (an output of no stage) and writes every out from the values of the params
the stage lists. Then, for each leaf of params.yaml in turn (lists are one leaf):

1. change it to another value of the same type, ``dvc repro``: exactly the stages that read the
   key (a listed params key equal to it or a parent of it, or a ``${key}`` dep) ran, and the
   stages downstream of them (their deps changed), none restored from the run cache, and every
   out holds the new values;
2. put it back, ``dvc repro``: each of those stages that DVC keeps in its run cache comes back
   from there without running (the others re-run), and the outs hold the old values again.

To halve the number of ``dvc repro`` calls (2-5 s each on 2 busy cores), step 2 for one key is the same call
as step 1 for the next (see ``check_changes``): each key is still changed against the original
values of all the others, and both expectations are checked in that call. Keys are split
between two throw-away repos run side by side.

The plan stage sits between the user's params.yaml and the later stages: it writes the resolved
params (``plans/params.yaml``) that those stages list their keys from. Here the fake plan stage
copies params.yaml there unchanged (what the real one does for every key the user set), so a key
re-runs the plan and then exactly the later stages that list it from the resolved file.

The run cache is on (DVC's default). It leaves params named like output metadata (``size``,
``nfiles``) out of its key, treeverse/dvc#10296 (components/params/keys.py); the control test
shows that the check above fails on such a key.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.params.config import ConfigError
from components.params.user import parse_user_params
from tests.data import HANDSET_PARAMS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"
SCRIPT = "fake_stage.py"
SPEC = "stages.json"
LOG = "runs.log"
WORKERS = 2  # independent repos, keys split between them (each dvc call is mostly one CPU)
INTERPOLATION = re.compile(r"\$\{\s*([\w.]+)\s*\}")

# One stage: log the run, write every out from the values of the params it lists.
STAGE_SCRIPT = """\
import json, sys
from pathlib import Path
import yaml

name = sys.argv[1]
spec = json.loads(Path("stages.json").read_text())[name]
with open("runs.log", "a") as log:
    log.write(name + "\\n")
files = {}

def params_of(path):
    if path not in files:
        files[path] = yaml.safe_load(Path(path).read_text()) if Path(path).exists() else {}
    return files[path]

def lookup(tree, dotted):
    for part in dotted.split("."):
        tree = tree[part]
    return tree

def digest(path):  # what a real stage reads of an upstream output: its content
    import hashlib
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.as_posix().encode() + f.read_bytes())
    return h.hexdigest()

values = {k: lookup(params_of(f), k) for f, k in spec["params"]}
inputs = {d: digest(Path(d)) for d in spec["inputs"] if Path(d).exists()}
payload = json.dumps({"stage": name, "params": values, "inputs": inputs}, sort_keys=True)
for out in spec["outs"]:
    path = Path(out)
    if out in spec["params_files"]:  # resolved params another stage reads: params.yaml as it is
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Path("params.yaml").read_text())
    elif path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(payload)
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "content.json").write_text(payload)
for out in spec["metrics"]:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("{}")
for inner in spec["inner"]:  # files inside a folder out that another stage depends on
    Path(inner).write_text(payload)
"""

# Where "another value of the same type" needs a choice: None, and strings that are one of a
# few choices. Every other leaf is changed by `changed_value`; the result must validate.
ALTERNATIVES: dict[str, Any] = {
    "data.channels": 3,
    "preprocess.spatial_mode": "pad",
    "preprocess.intensity.method": "zscore",
    "preprocess.clahe": {"clip_limit": 2.0, "tile_grid": 8},
    "train.model.kwargs.encoder_weights": "imagenet",
    "train.early_stopping.mode": "min",
    "train.device": "cpu",
    "train.num_workers": 2,
    "train.executor": "dask",
    "train.ddp.backend": "gloo",
    "train.folds": [0, 1],
    "preprocess.target_spacing": [1.0, 1.0, 1.0],
    "preprocess.slice_axis": 0,
    "train.patch_size": [32, 32],
    "train.iterations_per_epoch": 10,
    "ensemble.tta_axes": [0],
    "ensemble.mode": "vote",
    "evaluate.overlap": 0.25,
    "data.ignore_label": 255,
    "validate.near_duplicates": "fail",
    "evaluate.postprocess": "none",
    "validate.near_duplicate_threshold": 0.9,
    # the shipped params leave these to the plan (auto): a value of the user's instead
    "data.classes": {"background": 0, "organ": 1},
    "preprocess.crop_nonzero": True,
    "preprocess.intensity": {"method": "zscore", "kwargs": {}},
    "train.model": {"name": "unet", "kwargs": {}},
    "train.loss": [{"name": "dice", "weight": 1.0, "kwargs": {}}],
    "train.optimizer": {"name": "adamw", "kwargs": {}},
    "train.scheduler": {"name": "cosine", "kwargs": {}},
    "train.augment.transforms": [],
    "train.epochs": 3,
    "train.batch_size": 4,
    "train.val_every": 2,
    "train.bf16": True,
    "train.channels_last": True,
    "ensemble.tta": False,
    "plan.device": "cpu",
    "plan.memory_gb": 4.0,
    "plan.time_budget": "90m",
    "plan.configurations": ["3d"],
}
# One class value alone cannot change without breaking "values 0..K-1" (it stays an int); the
# patch-mode keys below are valid only with preprocess.spatial_mode 'patch' (the stages are fake
# scripts here: what matters is which stages DVC re-runs, not what they would do).
NOT_VALIDATED = (
    "data.classes.",
    "train.patch_size",
    "train.iterations_per_epoch",
    "ensemble.tta_axes",
    "ensemble.mode",
)


# ----------------------------------------------------------------------------- params trees


def leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf: scalars, lists and empty mappings."""
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, tree


def has(tree: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def with_value(tree: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(tree)
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[last] = value
    return out


def changed_value(key: str, value: Any) -> Any:
    """Another value of the same type."""
    if key in ALTERNATIVES:
        return ALTERNATIVES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 if value else 1.0
    if isinstance(value, str):
        return f"{value}_changed"
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return [value[0] + 1, *value[1:]]
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else [*value, *value]
    if value == {}:
        return {"changed": 1.0}
    raise AssertionError(f"{key}: no rule to change {value!r}; add a value to ALTERNATIVES")


def _covers(listed: str, key: str) -> bool:
    """A stage listing ``listed`` reads ``key``: the same key, a parent or a child of it."""
    return listed == key or key.startswith(listed + ".") or listed.startswith(key + ".")


def _under(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/")


def _path_of(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


# ----------------------------------------------------------------------------- the mirror repo


@dataclass
class Stage:
    name: str
    params: list[tuple[str, str]]  # (params file, key): plain entries are params.yaml's
    deps: list[str]
    outs: list[str]
    metrics: list[str]
    run_cached: bool
    upstream: set[str] = field(default_factory=set)

    @property
    def interpolated(self) -> set[str]:
        return {m for d in self.deps for m in INTERPOLATION.findall(d)}


def listed_params(entries: list[Any]) -> list[tuple[str, str]]:
    """A stage's ``params:`` as (file, key): plain entries from params.yaml, ``{file: [keys]}`` from it."""
    out: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, dict):
            out += [(str(f), str(k)) for f, keys in entry.items() for k in keys]
        else:
            out.append(("params.yaml", str(entry)))
    return out


def mirror_stages(real: dict[str, Any]) -> dict[str, Stage]:
    """The stages of a dvc.yaml: params, deps, outs, metrics, run-cache use and upstream stages."""
    stages: dict[str, Stage] = {}
    for name, st in real["stages"].items():
        assert "cmd" in st and "wdir" not in st, f"{name}: foreach/matrix/wdir stages are not mirrored"
        stages[name] = Stage(
            name=name,
            params=listed_params(st.get("params", [])),
            deps=[str(d) for d in st.get("deps", [])],
            outs=[_path_of(o) for o in st.get("outs", [])],
            metrics=[_path_of(m) for m in st.get("metrics", [])],
            # DVC saves no run-cache entry for a stage with an uncached out that is neither a
            # metric nor a plot (dvc/stage/__init__.py, Stage.run: ``no_cache_outs``).
            run_cached=not any(
                isinstance(o, dict) and (next(iter(o.values())) or {}).get("cache") is False
                for o in st.get("outs", [])
            ),
        )
    for st in stages.values():
        for other in stages.values():
            if any(_under(d, o) or _under(o, d) for d in st.deps for o in other.outs):
                st.upstream.add(other.name)
    return stages


@dataclass
class Repro:
    ran: list[str]
    restored: set[str]
    output: str


class Project:
    """A temporary git + DVC repo whose dvc.yaml mirrors the project's, with cheap commands."""

    def __init__(self, root: Path, dvc_yaml: dict[str, Any], params_text: str, pycache: Path) -> None:
        self.root = root
        self.params_text = params_text
        self.params = yaml.safe_load(params_text)
        self.stages = mirror_stages(dvc_yaml)
        self.order = list(self.stages)
        missing = {n: [k for _, k in s.params if not has(self.params, k)] for n, s in self.stages.items()}
        missing = {n: keys for n, keys in missing.items() if keys}
        assert not missing, f"dvc.yaml lists params that params.yaml lacks, so dvc repro fails: {missing}"
        cfg = root.parent / f"{root.name}_dvc_config"
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env |= {
            # Compile DVC's ~900 modules once, not in every call (saves ~2 s a call here).
            "PYTHONPYCACHEPREFIX": str(pycache),
            "DVC_NO_ANALYTICS": "1",
            "DVC_GLOBAL_CONFIG_DIR": str(cfg / "global"),
            "DVC_SYSTEM_CONFIG_DIR": str(cfg / "system"),
            "DVC_SITE_CACHE_DIR": str(cfg / "site"),
        }

        fake: dict[str, Any] = {k: v for k, v in dvc_yaml.items() if k != "stages"}
        fake["stages"] = {}
        all_outs = [o for s in self.stages.values() for o in s.outs]
        for name, st in dvc_yaml["stages"].items():
            kept = [
                d
                for d in self.stages[name].deps
                if INTERPOLATION.search(d) or any(_under(d, o) or _under(o, d) for o in all_outs)
            ]
            fake["stages"][name] = {
                "cmd": f"{shlex.quote(sys.executable)} {SCRIPT} {name}",
                "deps": [*kept, SCRIPT, SPEC],
                "params": st["params"],
                **{k: st[k] for k in ("outs", "metrics") if k in st},
            }
        root.mkdir(parents=True)
        (root / "dvc.yaml").write_text(yaml.safe_dump(fake, sort_keys=False))
        (root / "params.yaml").write_text(params_text)
        (root / SCRIPT).write_text(STAGE_SCRIPT)
        params_files = sorted({f for s in self.stages.values() for f, _ in s.params} - {"params.yaml"})
        spec = {
            n: {
                "params": s.params,
                "params_files": params_files,
                "outs": s.outs,
                "metrics": s.metrics,
                "inner": self.inner_deps(s),
                "inputs": [d for d in fake["stages"][n]["deps"] if d not in (SCRIPT, SPEC) and "${" not in d],
            }
            for n, s in self.stages.items()
        }
        (root / SPEC).write_text(json.dumps(spec, indent=1))
        for key in self.interpolated_keys:
            self.make_data_dir(get(self.params, key))
        self.run("git", "init", "-q")
        self.run(str(DVC), "init", "-q")

    def inner_deps(self, stage: Stage) -> list[str]:
        """Deps of other stages that lie inside one of ``stage``'s folder outs (e.g. a file of
        reports/validation): the fake stage must write them for those stages to find them."""
        deps = {d for s in self.stages.values() if s is not stage for d in s.deps}
        return sorted(d for d in deps if any(_under(d, o) and d != o for o in stage.outs))

    @property
    def params_files(self) -> set[str]:
        """Params files other than params.yaml that stages list keys from (some stage's outs)."""
        return {f for s in self.stages.values() for f, _ in s.params} - {"params.yaml"}

    @property
    def interpolated_keys(self) -> set[str]:
        return set().union(*(s.interpolated for s in self.stages.values()))

    def make_data_dir(self, rel: str) -> None:
        path = self.root / rel
        path.mkdir(parents=True, exist_ok=True)
        (path / "case_000.txt").write_text("a small data folder\n")

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def repro(self) -> Repro:
        log = self.root / LOG
        log.unlink(missing_ok=True)
        proc = self.run(str(DVC), "repro")
        output = proc.stdout + proc.stderr
        ran = log.read_text().split() if log.exists() else []
        restored = set(re.findall(r"Stage '([^']+)' is cached - skipping run", output))
        return Repro(ran, restored, output)

    def write_params(self, raw: dict[str, Any] | None) -> None:
        """Write ``raw`` as params.yaml, or the original text back when None."""
        text = self.params_text if raw is None else yaml.safe_dump(raw, sort_keys=False)
        (self.root / "params.yaml").write_text(text)

    def readers(self, key: str) -> set[str]:
        """Stages whose params list (or a ``${...}`` dep) covers ``key``."""
        return {
            s.name
            for s in self.stages.values()
            if any(_covers(p, key) for _, p in s.params) or any(_covers(m, key) for m in s.interpolated)
        }

    def affected(self, key: str) -> set[str]:
        """The readers of ``key`` and every stage downstream of them."""
        hit = self.readers(key)
        while more := {s.name for s in self.stages.values() if s.upstream & hit} - hit:
            hit |= more
        return hit

    def stale_outputs(self, raw: dict[str, Any]) -> list[str]:
        """Outs whose content does not match the params values in ``raw``."""
        stale = []
        for s in self.stages.values():
            want = {"stage": s.name, "params": {k: get(raw, k) for _, k in s.params}}
            for out in s.outs:
                path = self.root / out if Path(out).suffix else self.root / out / "content.json"
                if out in self.params_files:  # the resolved params: params.yaml as the plan saw it
                    if not path.is_file() or yaml.safe_load(path.read_text()) != raw:
                        stale.append(out)
                    continue
                got = json.loads(path.read_text()) if path.is_file() else {}
                if {k: got.get(k) for k in want} != json.loads(json.dumps(want)):
                    stale.append(out)
        return stale

    def sort(self, names: set[str] | list[str]) -> list[str]:
        return sorted(names, key=self.order.index)


def make_project(root: Path, dvc_yaml: dict[str, Any], params_text: str, pycache: Path) -> Project:
    project = Project(root, dvc_yaml, params_text, pycache)
    first = project.repro()
    assert project.sort(first.ran) == project.order, first.output
    assert not project.stale_outputs(project.params)
    again = project.repro()
    assert again.ran == [] and not again.restored, again.output
    return project


# ----------------------------------------------------------------------------- the check


@dataclass
class Check:
    step: str
    key: str | None
    expected: list[str]
    repro: Repro
    problems: list[str]


def check_changes(project: Project, changes: list[tuple[str, dict[str, Any]]]) -> list[Check]:
    """Change each key in turn, ``dvc repro`` after each; every way DVC got it wrong, as text.

    Writing key N's change also puts key N-1 back, and one last repro puts the last key back,
    so each key is changed against the original values of all the others. In one step the
    stages reading key N must run (the run cache has never seen their inputs); the stages that
    only read key N-1 see original inputs again and come back from the run cache (the ones DVC
    keeps there; the others re-run); nothing else may run. A single change is the plain
    "change, repro, put back, repro".
    """
    checks = []
    prev: str | None = None
    for key, changed in [*changes, (None, None)]:
        must_run = project.affected(key) if key else set()
        back = project.affected(prev) - must_run if prev else set()
        want_ran = project.sort(must_run | {s for s in back if not project.stages[s].run_cached})
        want_restored = project.sort({s for s in back if project.stages[s].run_cached})
        step = " and ".join(x for x in (key and f"{key} changed", prev and f"{prev} put back") if x)
        project.write_params(changed)
        r = project.repro()
        problems = []
        if project.sort(r.ran) != want_ran or project.sort(r.restored) != want_restored:
            problems.append(
                f"{step}: ran {project.sort(r.ran)}, restored from the run cache {project.sort(r.restored)}; "
                f"expected ran {want_ran}, restored {want_restored}"
            )
        if stale := project.stale_outputs(changed or project.params):
            problems.append(f"{step}: stale outputs {stale}")
        checks.append(Check(step, key, project.sort(must_run), r, problems))
        prev = key
    return checks


def changes_of(base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(key, params with that one leaf changed) for every leaf; each change validated."""
    out = []
    for key, value in leaves(base):
        new = changed_value(key, value)
        assert new != value, key
        changed = with_value(base, key, new)
        if not key.startswith(NOT_VALIDATED):
            try:
                parse_user_params(changed, f"params.yaml with {key}={new!r}")
            except ConfigError as exc:
                raise AssertionError(f"{exc}\n(choose a valid value for {key} in ALTERNATIVES)") from None
        out.append((key, changed))
    return out


@pytest.fixture
def real_dvc_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


@pytest.fixture
def real_params() -> str:
    return (REPO / "params.yaml").read_text()


@pytest.fixture
def handset_params() -> str:
    """Every key explicit (segflow's params before the plan stage): sections with kwargs to rename."""
    return HANDSET_PARAMS.read_text()


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


def test_every_params_key_reruns_exactly_the_stages_that_read_it(
    tmp_path: Path, real_dvc_yaml: dict[str, Any], real_params: str, pycache: Path
) -> None:
    text = real_params
    changes = changes_of(yaml.safe_load(text))
    keys = [k for k, _ in changes]
    # The walk reaches every section, keys the plan chooses (auto, one leaf), lists as one leaf.
    assert {"data.dir", "data.classes", "preprocess.image_size", "train.loss", "plan.time_budget"} <= set(
        keys
    )
    assert "train.loss.0.name" not in keys

    def worker(i: int) -> list[Check]:
        project = make_project(tmp_path / f"repo{i}", real_dvc_yaml, text, pycache)
        mine = changes[i::WORKERS]
        for key, changed in mine:
            if key in project.interpolated_keys:
                project.make_data_dir(get(changed, key))
        checks = check_changes(project, mine)
        status = project.run(str(DVC), "status")
        assert "up to date" in status.stdout, status.stdout
        return checks

    with ThreadPoolExecutor(WORKERS) as pool:
        checks = [c for part in pool.map(worker, range(WORKERS)) for c in part]

    problems = [p for c in checks for p in c.problems]
    assert not problems, "\n".join(problems)
    changed = [c for c in checks if c.key]
    assert sorted(c.key for c in changed) == sorted(keys)
    # The plan resolves every key (it re-runs for each); some keys no later stage reads (only the
    # plan ran, e.g. data.synthetic.*), and every stage re-ran for some key.
    assert all("plan" in c.expected for c in changed)
    assert any(c.expected == ["plan"] for c in changed)
    assert set().union(*(c.expected for c in changed)) == set(real_dvc_yaml["stages"])


def test_the_check_fails_on_a_key_the_run_cache_ignores(
    tmp_path: Path, real_dvc_yaml: dict[str, Any], handset_params: str, pycache: Path
) -> None:
    """Control: with keys named ``size`` (the old params.yaml, and a transform kwarg) it fails.

    DVC restores a stage from the run cache ("is cached - skipping run") instead of running it,
    dvc.lock records the new value, ``dvc status`` is clean and the outputs are stale:
    treeverse/dvc#10296. That needs (a) the key to sit *inside* a listed section (the plan stage's
    ``params: [preprocess, train, ...]``, as here; a stage listing the leaf itself,
    ``preprocess.size``, records it under that flat name, which is hashed, and re-runs) and (b) a
    stage DVC keeps in its run cache (one with no ``cache: false`` out other than metrics or plots).
    Here it is the plan stage: restored instead of run, it leaves the resolved params, and so every
    later stage, on the old value.
    """
    raw = yaml.safe_load(handset_params)
    raw["preprocess"] = {"size" if k == "image_size" else k: v for k, v in raw["preprocess"].items()}
    raw["train"]["augment"]["transforms"][0]["kwargs"]["size"] = 3  # a user kwarg named size
    old = yaml.safe_dump(raw, sort_keys=False)
    project = make_project(tmp_path / "old", real_dvc_yaml, old, pycache)
    cached_readers = {s for s in project.readers("preprocess.size") if project.stages[s].run_cached}
    assert {"plan", "preprocess"} <= cached_readers

    # The same check as above fails, and says why: the plan was restored from the run cache instead
    # of running, so nothing after it saw the change, and the outputs are stale.
    changed = with_value(raw, "preprocess.size", [32, 32])
    check, _ = check_changes(project, [("preprocess.size", changed)])
    assert check.problems, "DVC re-ran the plan: its run cache hashed a key named size"
    assert "plan" in check.repro.restored and not cached_readers & set(check.repro.ran), check.repro.output
    assert any("stale outputs" in p and "plans/params.yaml" in p for p in check.problems), check.problems

    # What a user saw: dvc.lock records the new value, `dvc status` is clean, the outputs are old.
    project.write_params(changed)
    r = project.repro()
    assert "plan" in r.restored and not cached_readers & set(r.ran), r.output
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert lock["stages"]["plan"]["params"]["params.yaml"]["preprocess"]["size"] == [32, 32]
    assert "Data and pipelines are up to date." in project.run(str(DVC), "status").stdout
    resolved = yaml.safe_load((project.root / "plans/params.yaml").read_text())
    assert resolved["preprocess"]["size"] == [64, 64]
    project.write_params(None)
    project.repro()

    # A kwarg named size in a list of transforms is just as invisible to the run cache.
    transforms = copy.deepcopy(raw["train"]["augment"]["transforms"])
    transforms[0]["kwargs"]["size"] = 4
    check, _ = check_changes(
        project, [("train.augment.transforms", with_value(raw, "train.augment.transforms", transforms))]
    )
    assert check.problems and "plan" in check.repro.restored and "train" not in check.repro.ran, (
        check.problems
    )

    # Condition (a): the stages list the leaf, not its section; DVC hashes it and re-runs.
    dotted = copy.deepcopy(real_dvc_yaml)
    for stage in ("plan", "preprocess"):
        dotted["stages"][stage]["params"] = [_leaf_listed(p) for p in dotted["stages"][stage]["params"]]
    leaf = make_project(tmp_path / "leaf", dotted, old, pycache)
    checks = check_changes(leaf, [("preprocess.size", changed)])
    assert [p for c in checks for p in c.problems] == []
    assert {"plan", "preprocess"} <= set(checks[0].repro.ran)


def _leaf_listed(entry: Any) -> Any:
    """A ``params:`` entry with the ``preprocess`` section listed by its leaf ``preprocess.size``."""
    if isinstance(entry, dict):
        return {f: [_leaf_listed(k) for k in keys] for f, keys in entry.items()}
    return "preprocess.size" if entry == "preprocess" else entry
