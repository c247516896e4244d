"""The planner on synthetic datasets of every kind: each test asserts the rules' outcome."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from components.planning import encoder
from components.planning.decision import PlanError
from components.planning.network import TARGET_STEPS
from components.planning.planner import folds_for_budget, make_plan
from components.planning.schedule import MIN_EPOCHS, STEPS_PER_EPOCH
from components.planning.topology import MemoryModel, topology
from tests.unit.planning.conftest import budget, cost_model, facts, user


def plan(f, b=None, **keys):  # type: ignore[no-untyped-def]
    return make_plan(user(**keys), f, b or budget(), None, cost_model)


def used(p, key):  # type: ignore[no-untyped-def]
    return p.values[key].used


def test_isotropic_mri_gets_the_median_case_as_its_3d_patch() -> None:
    p = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=8))
    assert p.configuration == "3d"
    assert used(p, "preprocess.target_spacing") == pytest.approx([1.0, 1.0, 1.0], rel=0.05)
    assert used(p, "preprocess.intensity")["method"] == "zscore"
    assert used(p, "train.patch_size") == [40, 56, 40]  # the median, each axis a multiple of 2^3
    assert used(p, "train.batch_size") == 2  # CPU: small batches, most steps
    assert used(p, "train.model")["name"] == "dynunet"
    assert used(p, "train.optimizer")["name"] in ("sgd", "adamw")  # by the schedule (test below)
    assert used(p, "ensemble.tta_axes") == [0, 1, 2]
    assert "RandAffine" in [t["name"] for t in used(p, "train.augment.transforms")]


def test_anisotropic_ct_resamples_the_thick_axis_to_its_10th_percentile_and_rotates_in_plane() -> None:
    f = facts([60, 512, 512], [5.0, 0.7, 0.7], n=40, dtype="int16", intensity=(-1024.0, 3071.0), spread=0.3)
    p = plan(f, budget(hours=24, memory_gb=8, device="cuda"))
    target = used(p, "preprocess.target_spacing")
    p10 = f.fingerprint["spacing"]["p10"][0]
    assert target[0] == pytest.approx(p10) and target[0] < f.fingerprint["spacing"]["median"][0]
    assert target[1:] == pytest.approx(f.fingerprint["spacing"]["median"][1:])
    assert used(p, "preprocess.intensity")["method"] == "ct"  # integer voxels from air to bone
    names = [t["name"] for t in used(p, "train.augment.transforms")]
    assert "RandRotate" in names and "RandAffine" not in names  # in-plane rotation only
    patch = used(p, "train.patch_size")
    t = topology(patch, target, 32)
    assert t.strides[1][0] == 1  # the thick axis does not pool at the first level
    assert all(s % d == 0 for s, d in zip(patch, t.divisors, strict=True))


def test_ct_is_recognised_by_its_channel_name() -> None:
    p = plan(facts([40, 128, 128], [2.0, 1.0, 1.0], names=["CT"]))
    assert used(p, "preprocess.intensity")["method"] == "ct"


def test_tiny_volumes_get_a_patch_no_smaller_than_the_median_and_divisible() -> None:
    p = plan(facts([10, 12, 9], [1.0, 1.0, 1.0], n=30))
    patch = used(p, "train.patch_size")
    assert all(s >= m for s, m in zip(patch, [10, 12, 9], strict=True))
    t = topology(patch, [1.0, 1.0, 1.0], 32)
    assert all(s % d == 0 for s, d in zip(patch, t.divisors, strict=True))


def test_huge_volumes_shrink_the_patch_to_the_memory_budget() -> None:
    f = facts([600, 512, 512], [1.0, 0.7, 0.7], n=20)
    p = plan(f, budget(hours=24, memory_gb=8, device="cuda"))
    patch, width = used(p, "train.patch_size"), used(p, "train.model")["kwargs"]["base_filters"]
    assert math.prod(patch) < 600 * 512 * 512 / 50
    mem = MemoryModel(
        8 * 2**30, used(p, "train.batch_size"), width, 1, 3, tuple(used(p, "preprocess.target_spacing"))
    )
    assert mem.fits(patch)
    assert "shrunk" in p.values["train.patch_size"].reason


def test_more_memory_gives_a_larger_patch() -> None:
    f = facts([300, 400, 400], [1.0, 1.0, 1.0], n=20)
    small = used(plan(f, budget(hours=24, memory_gb=4, device="cuda")), "train.patch_size")
    large = used(plan(f, budget(hours=24, memory_gb=40, device="cuda")), "train.patch_size")
    assert math.prod(large) > math.prod(small)


def test_memory_below_the_smallest_patch_is_an_error_naming_the_key() -> None:
    with pytest.raises(PlanError, match=r"plan\.memory_gb .* give at least"):
        plan(facts([300, 400, 400], [1.0, 1.0, 1.0], n=20), budget(memory_gb=0.001))


def test_four_channel_mri_measures_a_four_channel_network() -> None:
    p = plan(facts([128, 128, 128], [1.0, 1.0, 1.0], channels=4, n=100), budget(hours=24, device="cuda"))
    assert used(p, "data.channels") == 4 and used(p, "preprocess.intensity")["method"] == "zscore"


def test_rgb_photographs_keep_their_range_and_train_on_whole_images() -> None:
    p = plan(facts([600, 600], [1.0, 1.0], channels=3, dtype="uint8", n=80), budget(hours=24, device="cuda"))
    assert p.configuration == "2d" and used(p, "preprocess.intensity")["method"] == "dtype"
    patch = used(p, "train.patch_size")
    assert patch[0] >= 600 and patch[1] >= 600  # the whole median image
    assert used(p, "ensemble.tta_axes") == [0, 1]


def test_8k_microscopy_gets_patches_and_sliding_windows() -> None:
    p = plan(facts([8000, 8000], [1.0, 1.0], n=10), budget(hours=24, memory_gb=8, device="cuda"))
    patch = used(p, "train.patch_size")
    assert max(patch) < 8000 and min(patch) >= 32
    assert used(p, "evaluate.overlap") == 0.5


def test_a_large_budget_trains_nnunet_epochs_of_250_steps_with_the_widest_network() -> None:
    p = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=200, device="cuda"))
    assert used(p, "train.iterations_per_epoch") == STEPS_PER_EPOCH
    assert used(p, "train.epochs") >= MIN_EPOCHS
    assert used(p, "train.model")["kwargs"]["base_filters"] == 32
    assert used(p, "train.epochs") * STEPS_PER_EPOCH >= TARGET_STEPS


def test_a_small_budget_trains_fewer_steps_per_epoch_and_a_narrower_network() -> None:
    long = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=10))
    short = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=0.25))
    long_steps, short_steps = (
        used(p, "train.epochs") * used(p, "train.iterations_per_epoch") for p in (long, short)
    )
    assert short_steps < long_steps
    width = [used(p, "train.model")["kwargs"]["base_filters"] for p in (long, short)]
    assert width[1] <= width[0]
    assert used(short, "train.iterations_per_epoch") < STEPS_PER_EPOCH
    assert used(short, "train.epochs") >= MIN_EPOCHS // 2
    assert short.estimate["total_s"] <= 0.25 * 3600 * 1.05  # planned within the budget


def test_a_short_budget_trains_a_smaller_patch_but_never_under_half_a_case() -> None:
    f = facts([512, 512], [1.0, 1.0], n=30)
    whole = used(plan(f, budget(hours=24, device="cuda")), "train.patch_size")
    short = plan(f, budget(hours=0.2))
    patch = used(short, "train.patch_size")
    assert all(w >= 512 for w in whole)  # the whole median case (rounded up to the divisors)
    assert all(w / 2 <= p <= w for p, w in zip(patch, whole, strict=True)) and math.prod(patch) < math.prod(
        whole
    )
    assert "shrunk for time" in short.values["train.patch_size"].reason


@pytest.mark.parametrize(
    ("shape", "n"), [([2048, 2048], 20), ([4096, 4096], 10), ([256, 256, 256], 10), ([512, 512, 512], 10)]
)
def test_the_budget_a_too_short_error_asks_for_is_enough_to_plan(shape: list[int], n: int) -> None:
    """The minimum an error names is one the planner then plans in: the smallest configuration
    (the narrowest network on half a case when a whole one has no time, no mirrored inference)."""
    f = facts(shape, [1.0] * len(shape), n=n)
    with pytest.raises(PlanError, match="give at least") as err:
        plan(f, budget(hours=0.001, memory_gb=16))
    asked = re.search(r"give at least (?:(\d+)h)?(?:(\d+)m)?", str(err.value))
    assert asked is not None
    minutes = int(asked.group(1) or 0) * 60 + int(asked.group(2) or 0)
    p = plan(f, budget(hours=minutes / 60, memory_gb=16))
    assert p.estimate["total_s"] <= minutes * 60


def test_a_budget_a_whole_case_misses_trains_half_a_case() -> None:
    """No time for one epoch on a whole 256^3 case: the narrowest network trains half a case per axis
    (the error used to name the whole case's larger minimum)."""
    p = plan(facts([256, 256, 256], [1.0, 1.0, 1.0], n=10), budget(hours=17 / 60, memory_gb=16))
    assert used(p, "train.patch_size") == [128, 128, 128]
    assert "shrunk for time" in p.values["train.patch_size"].reason
    assert used(p, "ensemble.tta") is False and "no time" in p.values["ensemble.tta"].reason


def test_a_wider_network_on_part_of_a_case_loses_to_a_narrower_one_on_a_whole_case() -> None:
    """Context first: with a short budget 32 and 16 filters would train on patches shrunk for time
    while 8 filters trains the whole median case; 8 is planned (the hand-set hippocampus run's
    choice), and the reason names the shrunk patches."""
    p = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=0.25))
    assert used(p, "train.model")["kwargs"]["base_filters"] == 8
    assert used(p, "train.patch_size") == [40, 56, 40]
    assert "on a patch shrunk for time" in p.values["train.model"].reason
    steps = used(p, "train.epochs") * used(p, "train.iterations_per_epoch")
    assert steps == next(c for c in p.network["candidates"] if c["base_filters"] == 8)["steps_per_fold"]


def test_a_budget_below_one_epoch_names_the_minimum() -> None:
    with pytest.raises(PlanError, match=r"plan\.time_budget .* too short .* give at least"):
        plan(facts([128, 128, 128], [1.0, 1.0, 1.0], n=100), budget(hours=0.01))


def test_the_users_values_win_and_the_plan_plans_around_them() -> None:
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)
    p = plan(f, train__patch_size=[32, 32, 32], train__epochs=7)
    assert used(p, "train.patch_size") == [32, 32, 32] and p.values["train.patch_size"].user_set
    assert used(p, "train.epochs") == 7 and p.values["train.epochs"].planned != 7
    assert any("train.epochs: yours (7)" in n for n in p.notes)


def test_a_2d_patch_on_volumes_slices_along_the_coarse_axis() -> None:
    p = plan(facts([40, 256, 256], [4.0, 1.0, 1.0], n=40), train__patch_size=[128, 128])
    assert p.configuration == "2d" and used(p, "preprocess.slice_axis") == "coarsest"


def test_a_3d_patch_for_2d_images_names_both() -> None:
    with pytest.raises(PlanError, match=r"train\.patch_size \[8, 8, 8\] \(yours\) is 3D.*2D images"):
        plan(facts([96, 96], [1.0, 1.0]), train__patch_size=[8, 8, 8])


def test_the_same_data_and_budget_give_the_same_plan_byte_for_byte() -> None:
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)
    assert plan(f).dumps() == plan(f).dumps()


def test_a_budget_too_small_for_every_fold_trains_fewer_folds_further() -> None:
    f = facts([64, 96, 96], [1.0, 1.0, 1.0], n=100)
    all_folds = plan(f, budget(hours=24))
    assert used(all_folds, "train.folds") is None  # every fold
    few = plan(f, budget(hours=0.2))
    folds = used(few, "train.folds")
    assert folds is not None and 1 <= len(folds) < 5 and folds == list(range(len(folds)))
    steps = used(few, "train.epochs") * used(few, "train.iterations_per_epoch")
    assert steps >= 1000 * 0.8  # each trained fold gets about the minimum or more
    assert "fewer folds trained further" in few.values["train.folds"].reason


def test_short_schedules_train_with_adamw_long_ones_with_nnunets_sgd() -> None:
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)
    long, short = plan(f, budget(hours=200, device="cuda")), plan(f, budget(hours=0.35))
    assert used(long, "train.optimizer")["name"] == "sgd" and used(long, "train.scheduler")["name"] == "poly"
    assert (
        used(short, "train.optimizer")["name"] == "adamw"
        and used(short, "train.scheduler")["name"] == "cosine"
    )
    assert "short schedule" in short.values["train.optimizer"].reason


def test_short_schedules_train_with_the_light_augmentation_long_ones_with_nnunets_set() -> None:
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)
    long, short = plan(f, budget(hours=200, device="cuda")), plan(f, budget(hours=0.35))
    heavy = [t["name"] for t in used(long, "train.augment.transforms")]
    light = [t["name"] for t in used(short, "train.augment.transforms")]
    assert "RandSimulateLowResolution" in heavy and "RandSimulateLowResolution" not in light
    assert light.count("RandFlip") == 3 and used(short, "ensemble.tta_axes") == [0, 1, 2]  # still mirrored
    assert "short schedule" in short.values["train.augment.transforms"].reason


def test_the_plan_stage_counts_the_time_it_spends_measuring_networks(tmp_path: Path) -> None:
    """Measuring the candidates (a wide network's step on a whole photo takes seconds on a CPU) is
    part of the budget: the plan's own stage says it and training gets the rest; read back from the
    cache, the same plan."""
    from components.planning.measure import MeasurementCache

    f, b = facts([480, 640], [1.0, 1.0], n=30, channels=3), budget(hours=10 / 60)
    without = plan(f, b)
    first = make_plan(user(), f, b, MeasurementCache(tmp_path), cost_model)
    cached = MeasurementCache(tmp_path)
    again = make_plan(user(), f, b, cached, cost_model)
    measuring = cached.measuring_seconds()
    assert measuring > 10
    stages = first.estimate["stages_s"]
    assert stages["plan"] == pytest.approx(without.estimate["stages_s"]["plan"] + measuring, abs=0.1)
    assert stages["train"] < without.estimate["stages_s"]["train"] - 0.5 * measuring
    assert first.estimate["total_s"] <= b.seconds
    assert again.dumps() == first.dumps()


def test_the_one_width_left_by_the_budget_is_not_called_the_users() -> None:
    """32 and 16 filters leave no time for one epoch: 8 is planned, and its reason says why, not
    'yours' (train.model is auto)."""
    p = plan(facts([64, 256, 256], [1.0, 1.0, 1.0], n=20, channels=2), budget(hours=12 / 60))
    model = p.values["train.model"]
    assert model.used["kwargs"]["base_filters"] == 8 and not model.user_set
    assert "yours" not in model.reason and "wider: 32 base filters, 16 base filters" in model.reason
    mine = {"name": "dynunet", "kwargs": {"base_filters": 16}}
    yours = plan(facts([32, 64, 64], [1.0, 1.0, 1.0]), train__model=mine).values["train.model"]
    assert yours.reason == "yours (16 base filters)"


def test_the_folds_reason_says_which_limit_cut_them() -> None:
    k, why = folds_for_budget(80, 2, 5)  # no time for all five; two would train 80 steps each
    assert k == 1 and "no time for one epoch of all 5" in why and "2 folds would train only 80" in why
    k, why = folds_for_budget(840, 5, 5)  # all five fit, each too short
    assert k == 4 and "no time" not in why and "5 folds would train only 840" in why
    assert folds_for_budget(1500, 5, 5) == (5, "all 5: 1500 steps each in the budget")


def test_each_dataset_registers_and_logs_under_its_own_name() -> None:
    from components.planning.naming import registered_name

    assert registered_name("Hippocampus", "msd_hippocampus").value == "segflow-hippocampus"
    assert registered_name(None, "ISBI 2012 (EM)").value == "segflow-isbi-2012-em"
    assert registered_name("  ", "raw").value == "segflow-raw"
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=20)
    p = plan(replace(f, name="Task04_Hippocampus", folder="data"))
    assert used(p, "ensemble.registered_model") == "segflow-task04_hippocampus"
    assert used(p, "tracking.experiment") == "segflow-task04_hippocampus"
    assert "one MLflow experiment per dataset" in p.values["tracking.experiment"].reason
    mine = plan(replace(f, name="H"), ensemble__registered_model="my-model", tracking__experiment="e")
    assert used(mine, "ensemble.registered_model") == "my-model"  # yours wins
    assert used(mine, "tracking.experiment") == "e"


def test_the_plan_counts_the_loops_work_around_each_measured_step() -> None:
    """A fold's expected time is its steps at the measured step x LOOP_OVERHEAD, plus validation."""
    from components.planning.schedule import LOOP_OVERHEAD

    p = plan(facts([36, 50, 35], [1.0, 1.0, 1.0], n=260), budget(hours=1))
    measured = p.network["measured"]
    steps = used(p, "train.epochs") * used(p, "train.iterations_per_epoch")
    bare = steps * (measured["step_s"] + measured["aug_s_per_sample"] * used(p, "train.batch_size"))
    assert LOOP_OVERHEAD > 1.0
    assert p.estimate["fold_s"] >= bare * LOOP_OVERHEAD  # validation passes come on top
    assert p.estimate["fold_s"] < bare * LOOP_OVERHEAD * 1.15  # ... within its 10 % share


def test_2d_images_measure_a_residual_encoder_unet_and_keep_it_when_it_trains_as_much() -> None:
    """Half an hour on 30 EM-like 512^2 images: no width trains a whole image; the ResNet-18-encoder
    U-Net (ranked between 32 and 16 filters) keeps 70 % of the narrowest's steps and is planned, on a
    patch of multiples of 32, without deep supervision in its reason."""
    p = plan(facts([512, 512], [1.0, 1.0], n=30, classes=2, n_test=6), budget(hours=0.5))
    names = [c["network"] for c in p.network["candidates"]]
    assert names == ["dynunet 32", "unet_resnet18", "dynunet 16", "dynunet 8"]
    model = p.values["train.model"]
    assert model.used == {"name": "unet_resnet18", "kwargs": {"encoder_weights": None}}
    assert "ResNet-18 encoder" in model.reason and "deep supervision" not in model.reason
    assert all(s % 32 == 0 for s in used(p, "train.patch_size"))
    steps = used(p, "train.epochs") * used(p, "train.iterations_per_epoch")
    narrowest = p.network["candidates"][-1]["steps_per_fold"]
    assert steps >= 0.7 * narrowest and steps >= 1000


def test_small_images_volumes_and_the_users_network_get_no_encoder_candidate() -> None:
    """Slices under 64 px (the encoder would end under 2 px), volumes (it is 2D) and a user's
    train.model (measured alone) leave the ResNet-18-encoder U-Net out."""
    small = plan(facts([40, 56], [1.0, 1.0], n=200))
    volume = plan(facts([64, 128, 128], [1.0, 1.0, 1.0], n=40), budget(hours=2))
    mine = plan(
        facts([512, 512], [1.0, 1.0], n=30, classes=2),
        budget(hours=0.5),
        train__model={"name": "dynunet", "kwargs": {"base_filters": 16}},
    )
    for p in (small, volume, mine):
        assert all(c["network"] != "unet_resnet18" for c in p.network["candidates"])
    assert [c["network"] for c in mine.network["candidates"]] == ["dynunet 16"]


def test_on_a_short_schedule_the_encoder_on_about_the_whole_image_beats_more_plain_steps() -> None:
    """45 minutes on 30 images of 384 x 352: the 8-filter U-Net trains twice the steps, but the
    ResNet-18-encoder U-Net trains over 1,000 per fold on (nearly) the whole image and is planned;
    the reason gives its share of the image. With two thirds of the time 5 folds would train under
    1,000 steps each: 3 folds train the whole image further (not all 5 on part of it); with under
    half of it, 2 folds. With a fifth of the time not even 2 folds would: the plain U-Net's rules
    decide."""
    f = facts([384, 352], [1.0, 1.0], n=30, classes=3, n_test=6)
    p = plan(f, budget(hours=0.75))
    model, steps = p.values["train.model"], {c["network"]: c for c in p.network["candidates"]}
    assert model.used["name"] == "unet_resnet18"
    assert steps["dynunet 8"]["steps_per_fold"] > 1.5 * steps["unet_resnet18"]["steps_per_fold"] >= 1500
    whole = encoder.whole_patch(f.fingerprint["shape"]["median"])
    share = math.prod(used(p, "train.patch_size")) / math.prod(whole)
    assert share >= 0.75 and f"{share:.0%} of the median image" in model.reason
    shorter = plan(f, budget(hours=0.5))
    assert used(shorter, "train.model") == encoder.ENCODER_MODEL
    assert used(shorter, "train.patch_size") == used(p, "train.patch_size")  # the whole image still
    assert used(shorter, "train.folds") == [0, 1, 2]
    assert "5 folds would train only" in shorter.values["train.folds"].reason
    assert "steps per fold (>= 1000)" in shorter.values["train.model"].reason
    assert used(shorter, "train.epochs") * used(shorter, "train.iterations_per_epoch") >= 1000
    two = plan(f, budget(hours=0.35))
    assert used(two, "train.model") == encoder.ENCODER_MODEL and used(two, "train.folds") == [0, 1]
    assert used(two, "train.patch_size") == used(p, "train.patch_size")
    assert used(two, "train.epochs") * used(two, "train.iterations_per_epoch") >= 1000
    short = plan(f, budget(hours=0.2))
    assert used(short, "train.model")["name"] == "dynunet"


def test_the_users_folds_are_never_reduced_for_the_encoder() -> None:
    """With train.folds set, fewer folds are not an option: the encoder that would need them is not
    preferred, and all the user's folds train."""
    f = facts([384, 352], [1.0, 1.0], n=30, classes=3, n_test=6)
    mine = plan(f, budget(hours=0.5), train__folds=[0, 1, 2, 3, 4])
    assert used(mine, "train.folds") == [0, 1, 2, 3, 4]
    assert used(mine, "train.model")["name"] == "dynunet"


def test_a_resize_mode_trains_the_encoder_unet_on_whole_images_at_the_users_size() -> None:
    p = plan(
        facts([300, 300], [1.0, 1.0], n=40),
        budget(hours=0.5),
        preprocess__spatial_mode="resize",
        preprocess__image_size=[128, 128],
    )
    assert used(p, "train.model") == encoder.ENCODER_MODEL
    assert used(p, "train.patch_size") is None and used(p, "train.iterations_per_epoch") is None
    assert used(p, "train.epochs") >= 1
