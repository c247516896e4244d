"""DDP helpers (components/training/ddp.py) and the params checks of ``train.ddp``; the two-process
training itself is tests/integration/test_ddp.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist

from components.params.config import ConfigError, parse_params
from components.training.ddp import (
    AgreedStop,
    Rank,
    backend_for,
    broadcast_from_main,
    current_rank,
    is_main,
    local_stop,
    mean_over_ranks,
    per_rank_batch,
    shard_sampler,
)
from components.training.interrupt import StopRequest, TrainingInterrupted
from tests.unit.config.test_config import with_value


def test_two_ranks_get_disjoint_equal_shards_that_change_with_the_epoch() -> None:
    data = list(range(10))
    shards = {}
    for epoch in (0, 1):
        for r in (0, 1):
            sampler = shard_sampler(data, Rank(r, 2, r), seed=3, shuffle=True)  # type: ignore[arg-type]
            sampler.set_epoch(epoch)
            shards[epoch, r] = list(sampler)
        assert len(shards[epoch, 0]) == len(shards[epoch, 1]) == 5  # the same number of steps
        assert set(shards[epoch, 0]).isdisjoint(shards[epoch, 1])
        assert sorted(shards[epoch, 0] + shards[epoch, 1]) == data
    assert shards[0, 0] != shards[1, 0]  # each epoch its own order
    patches = shard_sampler(data, Rank(1, 2, 1), seed=0, shuffle=False)  # type: ignore[arg-type]
    assert list(patches) == [1, 3, 5, 7, 9]  # patch mode: indices only (each patch is drawn from its index)


def test_batch_split_backend_and_who_writes() -> None:
    assert per_rank_batch(8, None) == 8
    assert per_rank_batch(8, Rank(0, 4, 0)) == 2
    assert backend_for("auto", cuda=True) == "nccl"
    assert backend_for("auto", cuda=False) == "gloo"
    assert backend_for("gloo", cuda=True) == "gloo"
    assert is_main(None) and is_main(Rank(0, 2, 0)) and not is_main(Rank(1, 2, 1))
    assert current_rank() is None  # no process group in a plain run
    assert broadcast_from_main({"val_dice": 0.5}, None) == {"val_dice": 0.5}
    assert mean_over_ranks([1.0, 4.0], torch.device("cpu"), None) == [1.0, 4.0]


@pytest.fixture
def group() -> Iterator[Rank]:
    """A one-process gloo group (the collectives run for real; the world is just 1)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        rank = current_rank()
        assert rank is not None
        yield rank
    finally:
        dist.destroy_process_group()
    assert current_rank() is None


def test_collectives_in_a_group(group: Rank) -> None:
    assert group == Rank(0, 1, 0) and group.main
    assert broadcast_from_main({"val_dice": 0.25}, group) == {"val_dice": 0.25}
    assert mean_over_ranks([2.0, 6.0], torch.device("cpu"), group) == [2.0, 6.0]


def test_agreed_stop_polls_every_nth_call_and_then_stays_stopped(group: Rank) -> None:
    local = StopRequest()
    stop = AgreedStop(local, torch.device("cpu"), every=3)
    assert local_stop(stop) is local and local_stop(local) is local and local_stop(None) is None
    assert not stop.requested
    local.request(15)
    assert not stop.requested  # poll 2 of 3: not yet asked of the group
    assert stop.requested  # poll 3: agreed
    assert stop.requested  # and stays so without more collectives
    with pytest.raises(TrainingInterrupted, match="SIGTERM in fold 0"):
        stop.check("in fold 0")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch_size": 6}, r"train\.batch_size 6 must be a multiple of train\.ddp\.nproc_per_node 4"),
        ({"executor": "dask"}, r"needs train\.executor 'sequential'"),
        ({"class_aware_sampling": True}, r"train\.class_aware_sampling is not supported"),
    ],
)
def test_params_refuse_ddp_combinations_that_cannot_work(changes: dict[str, object], match: str) -> None:
    raw = with_value("train.ddp", {"nproc_per_node": 4})
    raw["train"].update({"batch_size": 8, **changes})
    with pytest.raises(ConfigError, match=match):
        parse_params(raw)
    raw["train"]["ddp"] = {"nproc_per_node": 1}
    parse_params(raw)  # one process: every combination is fine
