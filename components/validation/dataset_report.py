"""``reports/validation/dataset.md``: the dataset as validate read it, for the user to check.

Which layout was read (segflow's plain folders or an MSD / nnU-Net raw folder), whether a
``dataset.json`` described it, the classes with where they came from, the channels with their
names, how many cases have a region of interest, and every note validate printed (unlabelled
``imagesTs/`` files, classes named after the mask values found, ``validation`` rows that joined the
training pool, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from components.data.dataset_json import DatasetJson
from components.data.raw_layout import Folders
from components.params.edit import write_atomically
from components.validation.dataset_description import DatasetLabels


def _described(description: DatasetJson | None) -> str:
    if description is None:
        return "none (classes and channels come from params.yaml or the files)"
    keys = [
        k
        for k, present in (
            ("labels", description.labels is not None),
            (description.channel_key or "", description.channel_names is not None),
            (f"numTraining {description.num_training}", description.num_training is not None),
            (f"file_ending {description.file_ending}", description.file_ending is not None),
        )
        if present
    ]
    return f"{description.path.name} ({', '.join(keys) or 'no key segflow reads'}; checked against the files)"


def _stored(value: int, labels: DatasetLabels) -> str:
    """A class's value as the mask files store it (binary ``0 / v`` masks: ``v``, read as 1)."""
    if value == 1 and labels.mask_foreground is not None:
        return f"{labels.mask_foreground} (read as 1)"
    return str(value)


def dataset_report(
    data_dir: Path,
    folders: Folders,
    description: DatasetJson | None,
    labels: DatasetLabels,
    channels: int,
    notes: Sequence[str],
    rois: tuple[int, int],
) -> str:
    """The report's Markdown text.

    Args:
        data_dir: The dataset folder (``data.dir``).
        folders: Its layout.
        description: Its ``dataset.json``, or None.
        labels: The classes and channel names validate resolved.
        channels: The images' channel count.
        notes: Every note printed during validation.
        rois: Cases with a region-of-interest file, and cases.
    """
    names = labels.channel_names or ("",) * channels
    lines = [
        "# The dataset as validate read it",
        "",
        f"- folder: `{data_dir}` ({folders.layout} layout: `{folders.images}/` + `{folders.masks}/`)",
        f"- dataset.json: {_described(description)}",
        f"- classes, from {labels.class_source}:",
        "",
        "| mask value | class |",
        "|---:|---|",
        *(f"| {_stored(v, labels)} | {n} |" for n, v in sorted(labels.classes.items(), key=lambda kv: kv[1])),
        "",
        f"- channels: {channels}"
        + (f" ({', '.join(f'{i}: {n}' for i, n in enumerate(names))})" if any(names) else " (unnamed)"),
        f"- regions of interest: {rois[0]} of {rois[1]} cases (`rois/`): pixels outside count in no loss "
        "and no metric, and predictions there are background"
        if rois[0]
        else "- regions of interest: none (every pixel is trained and scored)",
    ]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_dataset_report(text: str, path: Path) -> None:
    """Write the report to ``path`` atomically (parent folders are created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), text)
