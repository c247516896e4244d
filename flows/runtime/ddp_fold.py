"""One fold trained by ``train.ddp.nproc_per_node`` DDP processes (``torchrun`` on this host).

The train flow's fold task calls :func:`train_fold_ddp`: it writes the fold's spec into the
fold's resume folder and runs ``python -m torch.distributed.run --standalone --nproc_per_node N
-m flows.runtime.ddp_fold <spec>``. Each of torchrun's processes joins the process group (NCCL with
CUDA, one GPU per process by ``LOCAL_RANK``; gloo on the CPU) and runs the same ``train_fold``
(components/training/ddp.py: what a rank changes). Rank 0 logs every epoch to the fold's MLflow
run, writes the checkpoints, history and resumable state into the folder, and then the result
file the task reads back; the task logs the summary and artifacts as for a one-process fold.

Sockets: the processes talk over loopback (gloo / NCCL bootstrap on ``lo``). torchrun's own
rendezvous store (PyTorch's TCPStore) listens on a random port of every interface while the fold
trains: it takes no bind address.

Stopping: a stop of the flow (SIGTERM, a Prefect cancellation) is passed to torchrun as SIGTERM,
which gives it to its processes; Ctrl-C reaches them all at once; and when the flow's process
dies (even by SIGKILL) torchrun gets SIGTERM from the kernel (Linux: ``PR_SET_PDEATHSIG``). The
processes stop at the same step (:class:`~components.training.ddp.AgreedStop`), the state of the
last complete epoch stays for a resume, and the task raises the stop. A failing process makes
torchrun end the others; its error comes back as the fold's error, with the rank named.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from components.core import layout
from components.core.errors import UserError
from components.core.threads import plan_threads
from components.training.interrupt import StopRequest, TrainingInterrupted
from components.training.loop import FoldResult
from flows.runtime.parent_death import stop_with_parent

SPEC_FILE, RESULT_FILE, ERROR_PREFIX = "ddp_spec.json", "ddp_result.json", "ddp_error"
DDP_TAG = "segflow.ddp"  # on the fold's MLflow run: "<world size> processes, <backend>"
STOP_GRACE_S = 60.0  # how long a stopped torchrun may take to end its processes before SIGKILL
POLL_S = 0.25
LOOPBACK = "lo"  # the loopback interface's name on Linux


@dataclass(frozen=True)
class DDPFoldSpec:
    """What each DDP process needs to train the fold (plain data: it is written as JSON)."""

    params_path: str
    fold: int
    folder: str  # the fold's resume folder: its state, final files, the spec and the result
    experiment: str
    run_id: str  # the fold's MLflow run (rank 0 logs the epochs to it)


class DDPFoldError(UserError):
    """A DDP process of the fold failed; the message is that process's error."""


def torchrun_command(spec_path: Path, nproc: int) -> list[str]:
    """``torchrun`` (as ``python -m torch.distributed.run``) of this module on one host."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc_per_node={nproc}",
        "-m",
        "flows.runtime.ddp_fold",
        str(spec_path),
    ]


def _child_env(nproc: int) -> dict[str, str]:
    """The flow's environment; CPU threads split between the processes and the processes' own
    sockets (gloo's, NCCL's bootstrap) on loopback: one host (unless the user set them)."""
    env = dict(os.environ)
    plan = plan_threads(processes=nproc)  # torchrun would set 1 (and warn) when it is not set
    env.setdefault("OMP_NUM_THREADS", str(plan.threads or max(1, plan.cores // nproc)))
    env.setdefault("GLOO_SOCKET_IFNAME", LOOPBACK)
    env.setdefault("NCCL_SOCKET_IFNAME", LOOPBACK)
    return env


def train_fold_ddp(spec: DDPFoldSpec, nproc: int, stop: StopRequest | None) -> FoldResult:
    """Train the fold with ``nproc`` DDP processes; their result, as ``train_fold`` returns it.

    Raises:
        TrainingInterrupted: ``stop`` was requested (the processes were stopped first).
        DDPFoldError: A process failed (its error, rank named).
    """
    folder = Path(spec.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [folder / RESULT_FILE, *folder.glob(f"{ERROR_PREFIX}.*.json")]:
        old.unlink(missing_ok=True)
    spec_path = folder / SPEC_FILE
    spec_path.write_text(json.dumps(asdict(spec), indent=2))
    print(f"fold {spec.fold}: DDP on {nproc} processes (torchrun)")
    proc = subprocess.Popen(
        torchrun_command(spec_path, nproc), env=_child_env(nproc), preexec_fn=stop_with_parent
    )
    try:
        code = _wait(proc, stop)
    except BaseException:  # a second signal, or the flow is going down: take the processes along
        _end(proc, signal.SIGKILL, 5.0)
        raise
    if stop is not None:
        stop.check(f"in fold {spec.fold} (DDP)")
    if code != 0:
        raise _failure(folder, spec.fold, code)
    return read_result(folder / RESULT_FILE)


def _wait(proc: subprocess.Popen[bytes], stop: StopRequest | None) -> int:
    """torchrun's exit code; on a stop request, SIGTERM first (then SIGKILL after the grace)."""
    while proc.poll() is None:
        if stop is not None and stop.requested:
            return _end(proc, signal.SIGTERM, STOP_GRACE_S)
        time.sleep(POLL_S)
    return int(proc.returncode)


def _end(proc: subprocess.Popen[bytes], sig: int, grace: float) -> int:
    """Send ``sig`` (if still running), wait ``grace`` s, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return int(proc.wait(timeout=grace))
        except subprocess.TimeoutExpired:
            proc.kill()
    return int(proc.wait())


def _failure(folder: Path, fold: int, code: int) -> BaseException:
    """The first failing rank's error (from its error file), else torchrun's exit code."""
    for path in sorted(folder.glob(f"{ERROR_PREFIX}.*.json")):
        err = json.loads(path.read_text())
        if err["interrupted"]:
            return TrainingInterrupted(int(err["signum"]), f"in fold {fold} (DDP rank {err['rank']})")
        return DDPFoldError(f"fold {fold}, DDP rank {err['rank']}: {err['type']}: {err['message']}")
    return RuntimeError(f"fold {fold}: torchrun exited with code {code} and no process reported an error")


def write_result(path: Path, result: FoldResult) -> None:
    """The fold's result as JSON, atomically (the task reads it once torchrun has exited)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), default=str, indent=2))
    os.replace(tmp, path)


def read_result(path: Path) -> FoldResult:
    """What :func:`write_result` wrote."""
    data = json.loads(path.read_text())
    for key in ("best_checkpoint", "last_checkpoint", "history"):
        data[key] = Path(data[key])
    return FoldResult(**data)


@contextlib.contextmanager
def _reporting_errors(folder: Path, rank: int) -> Iterator[None]:
    """Write this rank's error (type, message; stop or not) for the task, then let it propagate."""
    try:
        yield
    except BaseException as exc:
        interrupted = isinstance(exc, TrainingInterrupted)
        err = {
            "rank": rank,
            "type": type(exc).__name__,
            "message": str(exc),
            "interrupted": interrupted,
            "signum": exc.signum if isinstance(exc, TrainingInterrupted) else None,
        }
        (folder / f"{ERROR_PREFIX}.{rank}.json").write_text(json.dumps(err))
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """One DDP process of the fold (run by torchrun): join the group, train, rank 0 reports."""
    import torch.distributed as dist

    from components.data.splits import read_splits
    from components.params.config import load_params
    from components.tracking.tracker import Tracker
    from components.training.ddp import backend_for, current_rank
    from components.training.device import resolve_device
    from components.training.interrupt import graceful_stop
    from components.training.loop import train_fold

    args = sys.argv[1:] if argv is None else list(argv)
    spec = DDPFoldSpec(**json.loads(Path(args[0]).read_text()))
    folder = Path(spec.folder)
    params = load_params(spec.params_path)
    cuda = resolve_device(params.train.device).type == "cuda"
    with _reporting_errors(folder, int(os.environ.get("RANK", "0"))), graceful_stop() as stop:
        dist.init_process_group(backend_for(params.train.ddp.backend, cuda))
        try:
            rank = current_rank()
            assert rank is not None
            log = None
            if rank.main:
                tracker = Tracker(spec.experiment)
                tracker.set_tags(spec.run_id, {DDP_TAG: f"{rank.world} processes, {dist.get_backend()}"})
                log = tracker.epoch_logger(spec.run_id)
            res = train_fold(
                params,
                spec.fold,
                read_splits(layout.SPLITS),
                layout.PREPARED,
                folder,
                log_metrics=log,
                resume_dir=folder,
                stop=stop,
            )
            if rank.main:
                write_result(folder / RESULT_FILE, res)
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
