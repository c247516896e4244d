"""The promotion gate is race-free: two processes registering into ONE SQLite store at the same moment.

Also which lock each tracking URI gets (credentials never in the description), and that the lock
is re-entrant in its thread.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from components.tracking.gate_lock import LOCK_URL_ENV, GateLockError, gate_lock, lock_target, redact
from components.tracking.promotion import CHAMPION, register_and_gate
from components.tracking.tracker import Tracker

REPO = Path(__file__).resolve().parents[3]
EXPERIMENT = "segflow-gate-race"
ROUNDS = 3
SPLIT = "split-a"


def _no_rescoring(uri: str) -> float:
    raise AssertionError(f"the champion was tested on this split; nothing to re-score ({uri})")


def gate_worker(
    idx: int, uri: str, model_uri: str, plan: list[tuple[str, float]], barrier: Any, out: Any
) -> None:
    """One "workspace": per round, a run of its own, then (released together) register + gate."""
    tracker = Tracker(EXPERIMENT, uri=uri)
    for name, dice in plan:
        run = tracker.start_run(f"ensemble-{idx}", tags={"worker": str(idx)})
        tracker.log_metrics(run, {"test_dice": dice})
        barrier.wait(timeout=300)
        reg = register_and_gate(tracker, model_uri, name, dice, SPLIT, {"mlflow_run_id": run}, _no_rescoring)
        tracker.end_run(run)
        out.put((idx, name, run, reg.version, reg.alias, dice, reg.champion_dice))


@pytest.fixture(scope="module")
def model_uri(tracker: Tracker, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real packaged model (one tiny untrained U-Net) that both workers register."""
    import torch  # here, not at the top: the spawned workers import this module and need no torch

    from components.ensembling.packaging import log_ensemble_model
    from components.preprocessing.pipeline import PreprocessSpec
    from components.training.checkpoint import ModelSpec, save_checkpoint

    root = tmp_path_factory.mktemp("gate-ckpt")
    mspec = ModelSpec("unet", 1, 2, {"base_channels": 4, "depth": 2})
    torch.manual_seed(0)
    spec = PreprocessSpec((16, 16), "resize", "minmax", {}, 1)
    save_checkpoint(root / "fold_0.pt", mspec.build(), mspec, spec, {})
    run = tracker.start_run("packaged")
    return log_ensemble_model(tracker.uri, run, [root / "fold_0.pt"], False, ["background", "a"], 1)


def _collect(out: Any, procs: list[Any], n: int) -> list[tuple]:
    """``n`` results from the workers; fails at once (instead of hanging) when a worker died."""
    results: list[tuple] = []
    while len(results) < n:
        try:
            results.append(out.get(timeout=2))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a worker exited with {dead}; see its traceback above"
    return results


@pytest.mark.slow
def test_two_processes_gating_at_once_never_both_champion(
    store: str, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # spawned workers import this module by name
    tracker = Tracker(EXPERIMENT, uri=store)  # created here: the workers only find it
    names = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(ROUNDS)]
    # Which worker brings the better ensemble alternates between rounds.
    dices = [(0.8, 0.6) if r % 2 == 0 else (0.6, 0.8) for r in range(ROUNDS)]
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=gate_worker,
            args=(i, store, model_uri, [(n, d[i]) for n, d in zip(names, dices, strict=True)], barrier, out),
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    results = _collect(out, procs, 2 * ROUNDS)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for name in names:
        regs = sorted((r for r in results if r[1] == name), key=lambda r: int(r[3]))
        assert [r[3] for r in regs] == ["1", "2"]  # both versions registered, none lost
        first, second = regs
        # Judged one after the other: only the first saw no champion; the second saw the first's Dice.
        assert first[6] is None and second[6] == pytest.approx(first[5])
        best = max(regs, key=lambda r: r[5])
        assert str(tracker.client.get_model_version_by_alias(name, CHAMPION).version) == best[3]
        versions = tracker.client.search_model_versions(f"name = '{name}'")
        assert sorted(str(v.version) for v in versions) == ["1", "2"]
        for r in regs:  # each version carries its own run, and the gate's reason
            tags = tracker.client.get_model_version(name, r[3]).tags
            assert tags["mlflow_run_id"] == r[2] and "segflow.gate" in tags
        # Exactly one champion: the alias is on the better version only.
        champions = [
            v for v in versions if CHAMPION in tracker.client.get_model_version(name, v.version).aliases
        ]
        assert [str(v.version) for v in champions] == [best[3]]
    # No lost or mixed-up runs: every worker's run is there, finished, with its own metric.
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=1000)
    by_id = {r.info.run_id: r for r in runs}
    assert len(by_id) == 2 * ROUNDS
    for idx, _, run_id, _, _, dice, _ in results:
        run = by_id[run_id]
        assert run.info.status == "FINISHED" and run.data.tags["worker"] == str(idx)
        assert run.data.metrics["test_dice"] == pytest.approx(dice)


def test_lock_target_per_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOCK_URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    kind, where = lock_target("sqlite:///mlflow.db", "seg")
    assert kind == "file" and Path(where).parent == tmp_path / ".segflow"  # beside the DB, git-ignored
    assert Path(where).name.startswith("gate-mlflow.db-")
    kind, where = lock_target(f"sqlite:///{tmp_path / 'a' / 'm.db'}", "seg")
    assert Path(where).parent == tmp_path / "a" / ".segflow"
    assert (
        lock_target(f"sqlite:///{tmp_path / 'm.db'}", "other")[1]
        != lock_target(f"sqlite:///{tmp_path / 'm.db'}", "seg")[1]
    )  # one lock per registered model
    assert Path(lock_target(f"file://{tmp_path}/mlruns", "seg")[1]).parent == tmp_path / "mlruns"
    assert Path(lock_target("./mlruns", "seg")[1]).parent == tmp_path / "mlruns"
    pg = "postgresql+psycopg://mlflow:s3cret@db:5432/mlflow"
    assert lock_target(pg, "seg") == ("postgresql", pg)
    assert lock_target("mysql://u:p@db/mlflow", "seg")[0] == "mysql"
    assert redact(pg) == "postgresql+psycopg://mlflow:***@db:5432/mlflow"
    # An MLflow server: the lock SEGFLOW_GATE_LOCK_URL names, else a host-local file lock.
    assert lock_target("http://127.0.0.1:5000", "seg")[0] == "file"
    monkeypatch.setenv(LOCK_URL_ENV, pg)
    assert lock_target("https://mlflow.example.org", "seg") == ("postgresql", pg)
    monkeypatch.setenv(LOCK_URL_ENV, "redis://u:hunter2@cache/0")
    with pytest.raises(GateLockError, match=LOCK_URL_ENV) as info:
        lock_target("https://mlflow.example.org", "seg")
    assert "hunter2" not in str(info.value)


def test_gate_lock_is_reentrant_in_its_thread_and_excludes_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOCK_URL_ENV, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    entered = threading.Event()
    order: list[str] = []

    def other() -> None:
        with gate_lock(uri, "seg"):
            order.append("other")
        entered.set()

    with gate_lock(uri, "seg") as outer, gate_lock(uri, "seg") as inner:
        assert outer == inner and outer.startswith("file ")
        thread = threading.Thread(target=other)
        thread.start()
        order.append("holder")  # the other thread cannot enter before this block ends
    thread.join(timeout=120)
    assert entered.is_set() and order == ["holder", "other"]


def test_a_long_wait_for_the_gate_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A registration that waits on another's gate says so (a silent wait looks like a hang)."""
    import components.tracking.gate_lock as gl

    monkeypatch.setattr(gl, "_TELL_AFTER_S", 0.0)
    answers = iter([False, False, True])
    with caplog.at_level("WARNING", logger=gl.__name__):
        gl._wait(lambda: next(answers), "file lock /x.lock", timeout_s=60)
    [record] = [r for r in caplog.records if "waiting for the promotion gate lock" in r.getMessage()]
    assert "/x.lock" in record.getMessage()
