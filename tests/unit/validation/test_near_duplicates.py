"""Near-duplicate detection: augmented copies are grouped with their original, distinct cases never."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from components.io import read_image
from components.io.volumes import read_volume
from components.validation.candidates import common_structure
from components.validation.content import (
    THUMB_SIDE_2D,
    THUMB_SIDE_3D,
    MaskThumbnail,
    image_thumbnail,
    mask_thumbnail,
)
from components.validation.near_duplicates import (
    DEFAULT_THRESHOLD,
    EXACT_SIMILARITY,
    MASK_AGREEMENT,
    NearDuplicatePair,
    find_near_duplicates,
    near_duplicate_groups,
)

# what the transform names mean: transform(b) ~ a
SYMMETRIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "flip_h": lambda a: a[:, ::-1],
    "flip_v": lambda a: a[::-1],
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
}


def anatomy(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random uint8 image: Gaussian blobs of both signs plus fine texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(6, 12))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sy, sx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        img += rng.uniform(-1, 1) * np.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2) / 2)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2.0)
    img += 0.15 * texture / texture.std()
    img = (img - img.min()) / (img.max() - img.min())
    return (255 * img).astype(np.uint8)


def labels(image: np.ndarray) -> np.ndarray:
    """A smooth class-index mask that follows the image: 1 above the 70th percentile, 2 above the 92nd."""
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 4.0)
    q70, q92 = np.percentile(smooth, [70, 92])
    return ((smooth > q70).astype(np.uint8) + (smooth > q92)).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 70) -> np.ndarray:
    buf = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    return decoded


def crop(image: np.ndarray, frac: float, size: tuple[int, int] | None, nearest: bool = False) -> np.ndarray:
    """Cut ``frac`` of each side off, resize to ``size`` (width, height; default the original)."""
    h, w = image.shape
    dy, dx = round(frac * h), round(frac * w)
    inner = np.ascontiguousarray(image[dy : h - dy, dx : w - dx])
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(inner, size or (w, h), interpolation=mode)


def contrast(image: np.ndarray, alpha: float = 1.2, beta: float = -15.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def gamma(image: np.ndarray, g: float = 0.8) -> np.ndarray:
    return (255.0 * (image / 255.0) ** g).astype(np.uint8)


# name -> (image transform, mask transform); crops act alike on the mask (nearest)
COPIES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    **{k: (f, f) for k, f in SYMMETRIES.items() if k != "identity"},
    "jpeg70": (jpeg, lambda m: m),
    "crop4": (lambda a: crop(a, 0.04, None), lambda m: crop(m, 0.04, None, nearest=True)),
    "crop4_resized": (lambda a: crop(a, 0.04, (150, 170)), lambda m: crop(m, 0.04, (150, 170), nearest=True)),
    "downscaled": (
        lambda a: cv2.resize(a, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
        lambda m: cv2.resize(m, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_NEAREST),
    ),
    "contrast": (contrast, lambda m: m),
    "gamma": (gamma, lambda m: m),
    "rot90_crop4_jpeg_contrast": (
        lambda a: jpeg(contrast(np.rot90(crop(a, 0.04, (180, 160))), 0.9, 10.0)),
        lambda m: np.rot90(crop(m, 0.04, (180, 160), nearest=True)),
    ),
}


@dataclass
class Generated:
    ids: list[str]
    thumbs: np.ndarray
    masks: list[MaskThumbnail]
    images: dict[str, np.ndarray]
    original_of: dict[str, str]  # copy id -> original id
    made: dict[str, str]  # copy id -> copy name
    pairs: list[NearDuplicatePair]


@pytest.fixture(scope="module")
def generated() -> Generated:
    """16 distinct originals of different sizes; each copy kind applied to one or two originals."""
    rng = np.random.default_rng(7)
    sizes = [(int(rng.integers(110, 300)), int(rng.integers(110, 300))) for _ in range(16)]
    originals = {f"orig_{k:02d}": anatomy(rng, h, w) for k, (h, w) in enumerate(sizes)}
    images, masks = dict(originals), {k: labels(v) for k, v in originals.items()}
    original_of, made = {}, {}
    names = sorted(originals)
    for n, (kind, (f_img, f_mask)) in enumerate(COPIES.items()):
        for src in sorted({names[n % 16], names[(3 * n + 5) % 16]}):
            cid = f"copy_{kind}_of_{src}"
            images[cid] = np.ascontiguousarray(f_img(originals[src]))
            masks[cid] = np.ascontiguousarray(f_mask(masks[src]))
            original_of[cid], made[cid] = src, kind
    ids = sorted(images)
    cut = [image_thumbnail(images[i][None]) for i in ids]
    assert not any(t.framed for t in cut)  # no flat borders: the content is the whole image
    thumbs = np.stack([t.content for t in cut])
    mthumbs = [mask_thumbnail(masks[i], t.box) for i, t in zip(ids, cut, strict=True)]
    pairs = find_near_duplicates(ids, thumbs, masks=mthumbs)
    return Generated(ids, thumbs, mthumbs, images, original_of, made, pairs)


def test_every_copy_is_grouped_with_its_original(generated: Generated) -> None:
    groups = near_duplicate_groups(generated.ids, generated.pairs)
    missed = [c for c, o in generated.original_of.items() if c not in groups or groups[c] != groups.get(o)]
    assert not missed, f"copies not grouped with their original: {missed}"
    by_pair = {(p.a, p.b): p for p in generated.pairs}
    for copy, orig in generated.original_of.items():
        pair = by_pair[min(copy, orig), max(copy, orig)]  # found directly, not only through the group
        assert pair.similarity >= DEFAULT_THRESHOLD


def test_distinct_images_are_never_grouped(generated: Generated) -> None:
    groups = near_duplicate_groups(generated.ids, generated.pairs)
    originals = sorted(set(generated.ids) - set(generated.original_of))
    roots = [groups[o] for o in originals if o in groups]
    assert len(roots) == len(set(roots)), "two distinct originals share a group"
    for p in generated.pairs:  # every pair found is one original and its copy, or two copies of one
        assert generated.original_of.get(p.a, p.a) == generated.original_of.get(p.b, p.b), p


def test_pairs_name_the_symmetry_that_maps_b_onto_a(generated: Generated) -> None:
    by_pair = {(p.a, p.b): p for p in generated.pairs}
    for copy, orig in generated.original_of.items():
        if generated.made[copy] not in SYMMETRIES:
            continue
        a, b = sorted((copy, orig))
        pair = by_pair[(a, b)]
        assert pair.similarity == pytest.approx(1.0, abs=1e-4)
        assert np.array_equal(SYMMETRIES[pair.transform](generated.images[b]), generated.images[a]), pair
    combo = next(c for c, k in generated.made.items() if k.startswith("rot90_crop4"))
    a, b = sorted((combo, generated.original_of[combo]))
    assert by_pair[(a, b)].transform == ("rot90" if a == combo else "rot270")


def test_pairs_are_sorted_and_ordered(generated: Generated) -> None:
    keys = [(p.a, p.b) for p in generated.pairs]
    assert keys == sorted(keys) and all(a < b for a, b in keys)
    assert all(-1.0 <= p.similarity <= 1.0 for p in generated.pairs)


def test_masks_agree_for_copies_and_a_copy_with_another_mask_is_kept_apart(generated: Generated) -> None:
    by_pair = {(p.a, p.b): p for p in generated.pairs}
    true = {c: by_pair[min(c, o), max(c, o)].mask_agreement for c, o in generated.original_of.items()}
    assert all(v is not None and v >= 0.95 for v in true.values()), true  # crops, rescales: still >= 0.95
    # each copy's mask replaced by the mask of an unrelated original
    index = {c: k for k, c in enumerate(generated.ids)}
    swapped = list(generated.masks)
    originals = sorted(set(generated.ids) - set(generated.original_of))
    for copy, orig in generated.original_of.items():
        swapped[index[copy]] = generated.masks[index[originals[(originals.index(orig) + 5) % len(originals)]]]
    pairs = find_near_duplicates(generated.ids, generated.thumbs, masks=swapped)
    assert [(p.a, p.b, p.similarity) for p in pairs] == [(p.a, p.b, p.similarity) for p in generated.pairs]
    for p in pairs:
        if generated.original_of.get(p.a, p.a) != p.b and generated.original_of.get(p.b, p.b) != p.a:
            continue  # two copies of one original: both given the same other mask
        assert p.mask_agreement is not None and p.mask_agreement < MASK_AGREEMENT, p
        # the same image (a symmetry, an intensity change): a copy labelled differently; else kept apart
        assert p.copy == (p.similarity >= EXACT_SIMILARITY) and p.masks_disagree, p
    kept_apart = [p for p in pairs if not p.copy]
    assert kept_apart and all(p.a not in near_duplicate_groups(generated.ids, kept_apart) for p in kept_apart)
    assert all(
        p.mask_agreement is None and p.copy for p in find_near_duplicates(generated.ids, generated.thumbs)
    )


def test_invariant_to_the_order_of_ids(generated: Generated) -> None:
    perm = np.random.default_rng(3).permutation(len(generated.ids))
    ids = [generated.ids[k] for k in perm]
    pairs = find_near_duplicates(ids, generated.thumbs[perm], masks=[generated.masks[k] for k in perm])
    assert pairs == generated.pairs
    assert near_duplicate_groups(ids, pairs) == near_duplicate_groups(generated.ids, generated.pairs)


def test_neighbouring_structure_is_not_a_copy() -> None:
    """A second image of the same anatomy with its own fine detail (another slice) is distinct."""
    rng = np.random.default_rng(11)
    base = anatomy(rng, 200, 200).astype(np.float32)
    others = []
    for _ in range(4):  # same coarse layout, independent texture: what neighbouring slices look like
        texture = cv2.GaussianBlur(rng.normal(0, 1, base.shape).astype(np.float32), (0, 0), 1.5)
        others.append(np.clip(base + 12 * texture / texture.std(), 0, 255).astype(np.uint8))
    thumbs = np.stack([image_thumbnail(o[None]).content for o in others])
    assert find_near_duplicates([f"s{k}" for k in range(4)], thumbs) == []
    scored = find_near_duplicates([f"s{k}" for k in range(4)], thumbs, threshold=-1.0)  # all pairs scored
    assert len(scored) == 6 and max(p.similarity for p in scored) < DEFAULT_THRESHOLD - 0.1
    pruned = np.stack([thumbs[0], image_thumbnail(anatomy(rng, 90, 90)[None]).content])
    assert find_near_duplicates(["x", "y"], pruned, threshold=-1.0) == []  # dropped while aligning


def smooth_volume(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    vol = ndi.gaussian_filter(rng.normal(0, 1, shape), (1.5, 3.0, 3.0))
    return (vol + 0.1 * rng.normal(0, vol.std(), shape)).astype(np.float32)


def test_volumes_with_flipped_copies_are_found() -> None:
    rng = np.random.default_rng(5)
    shapes = [(20, 40, 36), (24, 48, 48), (18, 36, 44), (30, 40, 40), (22, 50, 38), (26, 34, 42)]
    vols = {f"vol_{k}": smooth_volume(rng, s) for k, s in enumerate(shapes)}
    flips = {"flip_x": (2,), "flip_zy": (0, 1), "flip_zyx": (0, 1, 2), "identity": ()}
    copies = {}
    for k, (name, axes) in enumerate(flips.items()):
        src = f"vol_{k}"
        copies[f"vol_{k}_{name}"] = np.flip(vols[src], axes) if axes else vols[src].astype(np.float64) * 3 + 1
    everything = {**vols, **copies}
    ids = sorted(everything)
    made = [image_thumbnail(everything[i][None]) for i in ids]
    thumbs = np.stack([t.content for t in made])
    assert thumbs.shape == (len(ids), THUMB_SIDE_3D, THUMB_SIDE_3D, THUMB_SIDE_3D)
    masks = [
        mask_thumbnail((everything[i] > np.percentile(everything[i], 80)).astype(np.uint8), t.box)
        for i, t in zip(ids, made, strict=True)
    ]
    pairs = find_near_duplicates(ids, thumbs, masks=masks)
    assert {(p.a, p.b): p.transform for p in pairs} == {
        (f"vol_{k}", f"vol_{k}_{n}"): n for k, n in enumerate(flips)
    }
    assert all(
        p.similarity > 0.999 and p.mask_agreement is not None and p.mask_agreement > 0.99 for p in pairs
    )
    groups = near_duplicate_groups(ids, pairs)
    assert set(groups) == {f"vol_{k}" for k in range(4)} | set(copies)
    assert "vol_4" not in groups and "vol_5" not in groups


def test_groups_are_connected_components() -> None:
    def pair(a: str, b: str, copy: bool = True) -> NearDuplicatePair:
        return NearDuplicatePair(a, b, 0.99, "identity", None, copy)

    ids = ["e", "d", "c", "b", "a", "f", "g"]
    pairs = [
        pair("c", "d"),
        pair("a", "e"),
        pair("b", "c"),
        pair("d", "e"),
        pair("f", "g"),
        pair("e", "f", copy=False),
    ]
    assert near_duplicate_groups(ids, pairs) == {
        "a": "a",
        "b": "a",
        "c": "a",
        "d": "a",
        "e": "a",
        "f": "f",
        "g": "f",
    }
    assert near_duplicate_groups(ids, []) == {}
    with pytest.raises(ValueError, match="not in ids"):
        near_duplicate_groups(["a"], [pair("a", "z")])


def test_empty_and_single_inputs() -> None:
    empty = np.zeros((0, THUMB_SIDE_2D, THUMB_SIDE_2D), np.float32)
    assert find_near_duplicates([], empty) == []
    one = image_thumbnail(np.arange(100.0).reshape(1, 10, 10)).content[None]
    assert find_near_duplicates(["only"], one, masks=[mask_thumbnail(np.zeros((10, 10), np.uint8))]) == []
    assert near_duplicate_groups([], []) == {}


def test_constant_images_match_nothing() -> None:
    thumbs = np.stack([image_thumbnail(np.full((1, 50, 60), v, np.uint8)).content for v in (0, 7, 7)])
    assert not thumbs.any()
    assert find_near_duplicates(["a", "b", "c"], thumbs) == []


def test_bad_inputs_are_refused() -> None:
    thumbs = np.zeros((2, THUMB_SIDE_2D, THUMB_SIDE_2D), np.float32)
    with pytest.raises(ValueError, match="unique"):
        find_near_duplicates(["a", "a"], thumbs)
    with pytest.raises(ValueError, match="one unique case id per thumbnail"):
        find_near_duplicates(["a", "b"], thumbs[:1])
    with pytest.raises(ValueError, match="masks"):
        find_near_duplicates(
            ["a", "b"], thumbs, masks=[MaskThumbnail((1,), np.zeros((1, 8, 8), np.uint8))] * 2
        )
    with pytest.raises(ValueError, match="masks"):
        find_near_duplicates(["a", "b"], thumbs, masks=[None])
    with pytest.raises(ValueError, match="frames"):
        find_near_duplicates(["a", "b"], thumbs, frames=[(np.zeros((8, 8)), None), None])
    with pytest.raises(ValueError, match="thumbs"):
        find_near_duplicates(["a", "b"], np.zeros((2, 8, 9)))
    with pytest.raises(ValueError, match="threshold"):
        find_near_duplicates(["a", "b"], thumbs, threshold=1.5)
    with pytest.raises(ValueError, match="volume"):
        image_thumbnail(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="mask"):
        mask_thumbnail(np.zeros((2, 10, 10, 10)))


def test_image_thumbnail_is_z_scored_and_channel_averaged() -> None:
    rng = np.random.default_rng(0)
    gray = anatomy(rng, 120, 90)
    thumb = image_thumbnail(gray[None]).content
    assert thumb.shape == (THUMB_SIDE_2D, THUMB_SIDE_2D) and thumb.dtype == np.float32
    assert abs(float(thumb.mean())) < 1e-5 and float(thumb.std()) == pytest.approx(1.0, abs=1e-4)
    rgb = np.stack([gray, gray, gray]).astype(np.uint16) * 200  # other dtype, scale, channels
    np.testing.assert_allclose(image_thumbnail(rgb).content, thumb, atol=1e-4)
    with_nan = gray.astype(np.float32)
    with_nan[5:9, 5:9] = np.nan
    with_nan[0, 0] = np.inf
    assert np.isfinite(image_thumbnail(with_nan[None]).content).all()
    vol = image_thumbnail(rng.normal(size=(2, 7, 30, 20))).content
    assert vol.shape == (THUMB_SIDE_3D,) * 3 and np.isfinite(vol).all()


def test_mask_thumbnail_holds_each_labels_share_of_every_cell() -> None:
    mask = np.zeros((128, 96), np.uint8)
    mask[10:50, 20:60] = 3
    mask[60:90, 5:30] = 1
    mask[100, :] = 2  # one row of 128: half a thumbnail row, a share of 0.5 (thin structures survive)
    thumb = mask_thumbnail(mask)
    assert thumb.labels == (1, 2, 3) and thumb.fractions.dtype == np.uint8
    assert thumb.fractions.shape == (3, THUMB_SIDE_2D, THUMB_SIDE_2D)
    shares = thumb.dense((1, 2, 3, 4))
    assert shares.shape == (4, THUMB_SIDE_2D, THUMB_SIDE_2D) and not shares[3].any()
    assert shares[1].max() == pytest.approx(0.5, abs=0.01) and shares[2].max() == pytest.approx(1.0)
    assert shares[0].sum() * 2 * 1.5 == pytest.approx(30 * 25, rel=0.02)  # area kept: cells of 2 x 1.5 px
    np.testing.assert_array_equal(mask_thumbnail(mask[None]).fractions, thumb.fractions)
    assert mask_thumbnail(np.ones((1, 5, 6, 7), np.float32)).fractions.shape == (1,) + (THUMB_SIDE_3D,) * 3
    box = ((0.0, 0.5), (0.0, 1.0))  # the top half only: the label-2 row is outside
    assert mask_thumbnail(mask, box).labels == (1, 3)


def real_thumbnails(folder: Path) -> tuple[list[str], np.ndarray, list[MaskThumbnail]]:
    ids, thumbs, masks = [], [], []
    for path in sorted((folder / "images").iterdir()):
        if path.name.endswith(".nii.gz"):
            image, mask = read_volume(path)[0][None], read_volume(folder / "masks" / path.name)[0]
        else:
            image, mask = read_image(path), read_image(folder / "masks" / path.name)
            image = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
        ids.append(path.name.split(".")[0])
        made = image_thumbnail(image)
        thumbs.append(made.content)
        masks.append(mask_thumbnail(mask, made.box))
    return ids, np.stack(thumbs), masks


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("isbi2012_em", []),  # 30 consecutive sections of one stack: distinct
        ("covid_ct_infnet", [("010", "043")]),  # one CT slice shipped twice, at two scales
        ("msd_hippocampus", []),  # 260 patients, alike at low resolution
    ],
)
def test_real_datasets_group_only_true_copies(
    shared_datasets: Path, dataset: str, expected: list[tuple[str, str]]
) -> None:
    ids, thumbs, masks = real_thumbnails(shared_datasets / dataset)
    pairs = find_near_duplicates(ids, thumbs, masks=masks)
    assert [(p.a, p.b) for p in pairs] == expected, pairs
    if dataset == "covid_ct_infnet":  # one image, two labellings: a copy, and a labelling warning
        (pair,) = pairs
        assert pair.copy and pair.masks_disagree and pair.similarity >= EXACT_SIMILARITY


def test_a_field_of_view_shared_by_every_image_does_not_make_them_copies() -> None:
    """Fundus-like images: one circular field of view, faint individual content. Without removing
    the shared structure, distinct images correlated at 0.98 and every pair was scored."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:256, 0:256]
    fov = (((yy - 128) ** 2 + (xx - 128) ** 2) < 110**2).astype(np.float32)
    images = []
    for _ in range(40):
        content = ndi.gaussian_filter(rng.standard_normal((256, 256)), 2) * 0.1
        content += ndi.gaussian_filter(rng.standard_normal((256, 256)), 12) * 0.3
        images.append((fov * (0.6 + content)).astype(np.float32))
    images.append(images[3][:, ::-1].copy())  # one true (mirrored) copy
    ids = [f"f{i:02d}" for i in range(len(images))]
    thumbs = np.stack([image_thumbnail(im[None]).content for im in images])
    pairs = find_near_duplicates(ids, thumbs)
    assert [(p.a, p.b) for p in pairs] == [("f03", "f40")]


def test_only_structure_the_set_really_shares_is_taken_out() -> None:
    rng = np.random.default_rng(4)
    images = [anatomy(rng, 80, 80).astype(np.float32) / 255 for _ in range(30)]
    distinct = np.stack([image_thumbnail(im[None]).content for im in images])
    assert common_structure(distinct) is None  # random images share (almost) nothing
    assert common_structure(distinct[:9]) is None  # too few cases to tell
    yy, xx = np.mgrid[0:80, 0:80]
    fov = ((yy - 40) ** 2 + (xx - 40) ** 2 < 35**2).astype(np.float32)
    framed = np.stack([image_thumbnail((fov * (1 + 0.1 * im))[None]).content for im in images])
    common = common_structure(framed)
    assert common is not None and np.corrcoef(common.ravel(), framed[0].ravel())[0, 1] > 0.9
