"""Which folders of a dataset hold the images and the masks: segflow's plain layout or an MSD /
nnU-Net raw folder.

Plain layout: ``images/`` and ``masks/``. A Medical Segmentation Decathlon task folder or an
nnU-Net raw dataset (``Dataset001_X/``) holds ``imagesTr/`` (training images: one file per case,
MSD's 4D files for several channels, or nnU-Net's ``<case>_0000`` channel files), ``labelsTr/``
(their masks, same stems), optionally ``imagesTs/`` and ``dataset.json``. Both layouts are paired
the same way (:func:`components.data.discovery.discover`); only the folder names differ.

``imagesTs/`` holds images without labels: they can be neither trained on nor scored, so they are
not cases of the run. Discovery says so in a note (how many, and that ``segflow predict`` segments
them once a model is trained); it never reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.data.case_table import DiscoveryError
from components.io import IMAGE_SUFFIXES

IMAGES_TR, LABELS_TR, IMAGES_TS = "imagesTr", "labelsTr", "imagesTs"


@dataclass(frozen=True)
class Folders:
    """The sub-folders of a dataset that hold its images and masks.

    Attributes:
        images: ``images`` or ``imagesTr``.
        masks: ``masks`` or ``labelsTr``.
        layout: ``"plain"`` or ``"MSD / nnU-Net"`` (for messages and the validation report).
    """

    images: str
    masks: str
    layout: str

    @property
    def expected(self) -> str:
        """What the dataset folder must hold, in words."""
        return f"{self.images}/ and {self.masks}/"


PLAIN = Folders("images", "masks", "plain")
RAW = Folders(IMAGES_TR, LABELS_TR, "MSD / nnU-Net")


def dataset_folders(data_dir: Path) -> Folders:
    """The layout of ``data_dir``: MSD / nnU-Net when it has ``imagesTr/`` or ``labelsTr/``, else plain.

    Raises:
        DiscoveryError: The folder holds both layouts (which one to read is ambiguous).
    """
    data_dir = Path(data_dir)
    raw = [f"{n}/" for n in (IMAGES_TR, LABELS_TR) if (data_dir / n).is_dir()]
    plain = [f"{n}/" for n in (PLAIN.images, PLAIN.masks) if (data_dir / n).is_dir()]
    if raw and plain:
        raise DiscoveryError(
            f"{data_dir}: holds {' and '.join(plain)} (segflow's layout) and {' and '.join(raw)} (an MSD / "
            "nnU-Net folder); keep one layout: move one pair of folders out"
        )
    return RAW if raw else PLAIN


def unlabelled_note(data_dir: Path) -> str | None:
    """A note on ``imagesTs/`` (images without labels, not cases of the run), or None without it."""
    folder = Path(data_dir) / IMAGES_TS
    if not folder.is_dir():
        return None
    images = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    return (
        f"{folder}: {len(images)} image file(s) without labels are not cases of this run (no mask to train "
        "on or to score); once a model is trained, `segflow predict` segments them"
    )
