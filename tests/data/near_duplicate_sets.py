"""Synthetic look-alike sets and copy transforms for the near-duplicate detector's tests and benchmark.

Imitations of the kinds of data the detector is judged on (none of them is tuned to one image):

- wound photographs (RGB, a skin-coloured scene with one wound, 4:3 or 3:4) in letterbox frames;
- fundus photographs of different eyes (a circular field of view on black, optic disc, macula, a
  vessel tree drawn as a random branching walk; the vessel mask);
- brain MRI of different patients (a skull-stripped brain on a zero background, gyri from a random
  field, ventricles, a tumour with its edema; 2D slices or 3D volumes);

and the copies a dataset may ship: symmetries of the whole frame or of the content inside a frame,
padding, crops, resizes, JPEG, brightness/contrast/gamma, noise and 8 <-> 16 bit. Every function is
deterministic for its generator. Images are channels-last ``(H, W)``/``(H, W, 3)`` or ``(Z, Y, X)``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy import ndimage as ndi

Pair = tuple[np.ndarray, np.ndarray]  # (image, mask)


def _field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """A smooth zero-mean unit-sd random field. Shape: ``shape``."""
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return (f - f.mean()) / max(float(f.std()), 1e-9)


def _blob(rng: np.random.Generator, grid: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """An irregular ball: radius modulated by a smooth random field. Shape: grid ``(D, *S)`` -> ``S``."""
    d = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    wobble = 1.0 + 0.25 * _field(rng, d.shape, max(2.0, radius / 2))
    return d <= radius * wobble


def wound_photo(rng: np.random.Generator, long_side: int = 240) -> Pair:
    """A skin-coloured scene with one wound: uint8 RGB ``(H, W, 3)`` (4:3 or 3:4) and its mask."""
    short = long_side * 3 // 4
    h, w = (short, long_side) if rng.random() < 0.6 else (long_side, short)
    grid = np.indices((h, w), dtype=np.float64)
    skin = np.array([rng.uniform(0.55, 0.85), rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.45)])
    shade = 1.0 + 0.15 * _field(rng, (h, w), h / 4) + 0.04 * _field(rng, (h, w), 1.5)
    img = skin[None, None, :] * shade[..., None]
    centre = np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w])
    wound = _blob(rng, grid, centre, rng.uniform(0.12, 0.25) * min(h, w))
    rim = ndi.binary_dilation(wound, iterations=max(2, h // 40)) & ~wound
    bed = np.array([rng.uniform(0.5, 0.8), rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.2)])
    texture = 1.0 + 0.25 * _field(rng, (h, w), 2.0)
    img[wound] = bed * texture[wound, None]
    img[rim] *= 0.85
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), wound.astype(np.uint8)


def letterbox(image: np.ndarray, side: int | None = None, where: str = "top", value: float = 0) -> np.ndarray:
    """``image`` placed in a square frame of ``side`` filled with ``value`` (at the top or centred)."""
    h, w = image.shape[:2]
    side = side or max(h, w)
    out = np.full((side, side, *image.shape[2:]), value, image.dtype)
    y0 = 0 if where == "top" else (side - h) // 2
    x0 = (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = image
    return out


def _vessel(
    canvas: np.ndarray, rng: np.random.Generator, start: np.ndarray, angle: float, width: float, depth: int
) -> None:
    """Draw one vessel as a curving random walk with branches (in place, value 1)."""
    side, pos, bend = canvas.shape[0], start.astype(np.float64), rng.normal(0, 0.012)
    inside = ((side / 2) * 0.92) ** 2
    for _ in range(400):
        angle += bend + rng.normal(0, 0.025)
        nxt = pos + side / 120 * np.array([np.cos(angle), np.sin(angle)])
        if ((nxt - side / 2) ** 2).sum() > inside or width < 1.0:
            return
        cv2.line(canvas, (int(pos[0]), int(pos[1])), (int(nxt[0]), int(nxt[1])), 1, max(1, round(width)))
        pos, width = nxt, width * 0.995
        if depth and rng.random() < 0.04:
            _vessel(
                canvas, rng, pos, angle + rng.choice([-1, 1]) * rng.uniform(0.4, 0.9), width * 0.7, depth - 1
            )


def fundus(rng: np.random.Generator, side: int = 384, right_eye: bool = True, contrast: float = 0.3) -> Pair:
    """A fundus photograph: uint8 RGB ``(side, side, 3)`` and its vessel mask (one eye, own vessels;
    ``contrast``: how much darker a vessel is than the background around it)."""
    grid = np.indices((side, side), dtype=np.float64) / side
    r2 = (grid[0] - 0.5) ** 2 + (grid[1] - 0.5) ** 2
    cy, cx = 0.5 + rng.uniform(-0.03, 0.03, 2)  # the field of view: where the camera put it
    fov = (grid[0] - cy) ** 2 + (grid[1] - cx) ** 2 < rng.uniform(0.42, 0.5) ** 2
    sign = 1 if right_eye else -1
    disc = np.array([0.5 + rng.normal(0, 0.02), 0.5 + sign * rng.uniform(0.18, 0.24)])
    macula = np.array([0.5 + rng.normal(0, 0.02), 0.5 - sign * rng.uniform(0.05, 0.1)])
    light = 1.0 - 1.6 * r2 + 0.08 * _field(rng, (side, side), side / 6)
    base = np.array([rng.uniform(0.7, 0.95), rng.uniform(0.3, 0.45), rng.uniform(0.08, 0.18)])
    img = base[None, None, :] * light[..., None] * (1.0 + 0.03 * _field(rng, (side, side), 1.2))[..., None]
    img *= (1.0 - 0.35 * np.exp(-((grid[0] - macula[0]) ** 2 + (grid[1] - macula[1]) ** 2) / 0.004))[
        ..., None
    ]
    disc_px = ((grid[0] - disc[0]) ** 2 + (grid[1] - disc[1]) ** 2) < rng.uniform(0.05, 0.07) ** 2
    img[disc_px] = [0.98, 0.85, 0.55]
    vessels = np.zeros((side, side), np.uint8)
    start = disc[::-1] * side  # (x, y) for cv2
    for base_angle in (-0.5, 0.5, np.pi - 0.6, np.pi + 0.6):  # temporal arcades, nasal vessels
        angle = (base_angle if right_eye else np.pi - base_angle) + rng.normal(0, 0.15)
        _vessel(vessels, rng, start, angle, rng.uniform(3.0, 5.0) * side / 384, depth=3)
    v = vessels.astype(bool) & fov
    img[v] *= 1.0 - contrast * rng.uniform(0.8, 1.2)
    img[~fov] = 0.0
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), v.astype(np.uint8)


def brain(
    rng: np.random.Generator,
    shape: tuple[int, ...] = (40, 64, 56),
    template: int | None = None,
    individuality: float = 1.0,
) -> Pair:
    """A skull-stripped brain MRI on a zero background: float32 image of ``shape`` (2D or 3D) and the
    tumour mask (1 = core, 2 = edema).

    With ``template`` (a seed), every patient's shape and tissue pattern mixes the template's with
    their own (``individuality`` 0: the template's, 1: their own), like patients of one population
    registered to one atlas; the tumour and the noise are always their own.
    """

    def mix(draw: Callable[[np.random.Generator], np.ndarray], field: bool = False) -> np.ndarray:
        own = draw(rng)
        if template is None:
            return own
        base, a = draw(np.random.default_rng([template, len(shape)])), individuality
        return np.sqrt(1 - a * a) * base + a * own if field else base + a * (own - base)

    grid = np.indices(shape, dtype=np.float64)
    dims = np.array(shape, dtype=np.float64)
    centre = dims / 2 + mix(lambda g: g.normal(0, 0.02, len(shape))) * dims
    axes = dims * mix(lambda g: g.uniform(0.38, 0.45, len(shape)))
    r = np.sqrt(sum(((x - c) / a) ** 2 for x, c, a in zip(grid, centre, axes, strict=True)))
    head = r <= 1.0 + 0.04 * mix(lambda g: _field(g, shape, min(shape) / 6), field=True)
    gyri = mix(lambda g: _field(g, shape, 1.5) + 0.5 * _field(g, shape, 4.0), field=True)
    img = np.where(gyri > 0.2, 0.75, 0.5) * (1 + 0.05 * _field(rng, shape, 8.0))
    vent = np.zeros(shape, bool)
    for side in (-1, 1):
        c = centre.copy()
        c[-1] += side * axes[-1] * 0.15
        vent |= np.sqrt(sum(((x - cc) / (a * 0.18)) ** 2 for x, cc, a in zip(grid, c, axes, strict=True))) < 1
    img[vent] = 0.15
    core_centre = centre + rng.uniform(-0.45, 0.45, len(shape)) * axes
    core = _blob(rng, grid, core_centre, rng.uniform(0.12, 0.2) * min(axes)) & head
    edema = _blob(rng, grid, core_centre, rng.uniform(0.3, 0.4) * min(axes)) & head & ~core
    img[edema] = 0.9
    img[core] = 1.0
    img = ndi.gaussian_filter(img, 0.6) + rng.normal(0, 0.03, shape)
    img = np.where(head, np.clip(img, 0.01, None), 0.0).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask[edema], mask[core] = 2, 1
    return img, mask


# ---- copies -------------------------------------------------------------------------------------

Copy = Callable[[np.ndarray, np.ndarray, np.random.Generator], Pair]
SYMMETRIES_2D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flip_h": lambda a: a[:, ::-1],
    "flip_v": lambda a: a[::-1],
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": lambda a: np.swapaxes(a, 0, 1),
    "anti_transpose": lambda a: np.swapaxes(np.rot90(a, 2), 0, 1),
}


def _resize(a: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """cv2.resize to ``size`` = (width, height), any dtype cv2 takes, channels kept."""
    mode = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if size[0] < a.shape[1] else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(a), size, interpolation=mode)
    return out.reshape(size[1], size[0], *a.shape[2:])


def _max_value(image: np.ndarray) -> float:
    return float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else float(image.max())


def _cast(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype.kind in "ui":
        return np.clip(np.rint(x), 0, np.iinfo(like.dtype).max).astype(like.dtype)
    return x.astype(like.dtype)


def crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """2-5 % off each side, or 3-8 % off one side."""
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        f = rng.uniform(0.02, 0.05)
        box = (round(f * h), h - round(f * h), round(f * w), w - round(f * w))
    else:
        f, k = rng.uniform(0.03, 0.08), int(rng.integers(4))
        box = (
            round(f * h) if k == 0 else 0,
            h - round(f * h) if k == 1 else h,
            round(f * w) if k == 2 else 0,
            w - round(f * w) if k == 3 else w,
        )
    y0, y1, x0, x1 = box
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


MIN_SIDE = 64  # a copy resized below the thumbnail side loses the detail the score compares
MIN_SIDE_3D = 16  # the same for volumes


def resize(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """Rescaled by 0.5-1.5 (the aspect ratio kept or changed by up to 10 %), at least
    :data:`MIN_SIDE` pixels a side (no smaller than the image already is)."""
    h, w = image.shape[:2]
    s = rng.uniform(min(1.0, max(0.5, MIN_SIDE / min(h, w))), 1.5)
    size = (max(min(w, MIN_SIDE), round(w * s * rng.uniform(0.9, 1.1))), max(min(h, MIN_SIDE), round(h * s)))
    return _resize(image, size, False), _resize(mask, size, True)


def pad(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """A constant band on one or more sides (letterbox to a square, or a border of 5-20 %)."""
    if rng.random() < 0.5 and image.shape[0] != image.shape[1]:
        where = "top" if rng.random() < 0.5 else "centre"
        return letterbox(image, where=where), letterbox(mask, where=where)
    h, w = image.shape[:2]
    widths = [round(rng.uniform(0.05, 0.2) * n) if rng.random() < 0.6 else 0 for n in (h, h, w, w)]
    widths[int(rng.integers(4))] = max(widths) or round(0.1 * h)
    spec = ((widths[0], widths[1]), (widths[2], widths[3]))
    extra = ((0, 0),) * (image.ndim - 2)
    return np.pad(image, spec + extra), np.pad(mask, spec)


def jpeg(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """JPEG re-encoding at quality 60-90 (8-bit view of the image, back to its dtype)."""
    top = _max_value(image)
    as8 = np.clip(image.astype(np.float64) / max(top, 1e-9) * 255, 0, 255).astype(np.uint8)
    bgr = as8[..., ::-1] if as8.ndim == 3 else as8
    buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))]
    )[1]
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    out = decoded[..., ::-1] if decoded.ndim == 3 else decoded
    return _cast(out.astype(np.float64) / 255 * top, image), mask


def intensity(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """Brightness and contrast (x0.8-1.25, +-8 % of the range) or gamma 0.8-1.25."""
    top = _max_value(image)
    x = image.astype(np.float64) / max(top, 1e-9)
    if rng.random() < 0.5:
        x = x * rng.uniform(0.8, 1.25) + rng.uniform(-0.08, 0.08)
    else:
        x = np.clip(x, 0, None) ** rng.uniform(0.8, 1.25)
    return _cast(np.clip(x, 0, 1) * top, image), mask


def noise(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """Gaussian noise of 1-3 % of the intensity range."""
    top = _max_value(image)
    return _cast(image + rng.normal(0, rng.uniform(0.01, 0.03) * top, image.shape), image), mask


def bit_depth(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
    """8-bit -> 16-bit (x 257) or the reverse; float images -> uint16."""
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257, mask
    top = _max_value(image)
    return (np.clip(image / max(top, 1e-9), 0, 1) * (255 if image.dtype == np.uint16 else 65535)).astype(
        np.uint8 if image.dtype == np.uint16 else np.uint16
    ), mask


def symmetry(name: str) -> Copy:
    f = SYMMETRIES_2D[name]
    return lambda image, mask, rng: (np.ascontiguousarray(f(image)), np.ascontiguousarray(f(mask)))


COPIES_2D: dict[str, Copy] = {
    **{f"frame_{k}": symmetry(k) for k in SYMMETRIES_2D},
    "pad": pad,
    "crop": crop,
    "resize": resize,
    "jpeg": jpeg,
    "intensity": intensity,
    "noise": noise,
    "bit_depth": bit_depth,
}


def in_frame(content: Pair, frame: Callable[[np.ndarray], np.ndarray], name: str) -> Pair:
    """The content turned by the symmetry ``name`` and then framed (the band stays where it was)."""
    f = SYMMETRIES_2D[name]
    image, mask = (np.ascontiguousarray(f(a)) for a in content)
    return frame(image), frame(mask)


def random_copy(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, kinds: int = 2
) -> tuple[Pair, str]:
    """``kinds`` different copy transforms of :data:`COPIES_2D` applied in turn, and their names."""
    names = [str(n) for n in rng.choice(sorted(COPIES_2D), size=kinds, replace=False)]
    for n in names:
        image, mask = COPIES_2D[n](image, mask, rng)
    return (np.ascontiguousarray(image), np.ascontiguousarray(mask)), "+".join(names)


# ---- 3D copies ----------------------------------------------------------------------------------


def _zoom(a: np.ndarray, factors: np.ndarray, nearest: bool) -> np.ndarray:
    return ndi.zoom(a, factors, order=0 if nearest else 1, mode="nearest", grid_mode=True)


def copy_3d(image: np.ndarray, mask: np.ndarray, kind: str, rng: np.random.Generator) -> Pair:
    """One copy of a volume ``(Z, Y, X)``: ``flip``, ``rot90`` (in-plane), ``pad``, ``crop``, ``zoom``,
    ``intensity``, ``noise`` or ``dtype``."""
    if kind == "flip":
        axes = tuple(a for a in range(3) if rng.random() < 0.5) or (int(rng.integers(3)),)
        return np.flip(image, axes).copy(), np.flip(mask, axes).copy()
    if kind == "rot90":
        k = int(rng.integers(1, 4))
        return np.rot90(image, k, (1, 2)).copy(), np.rot90(mask, k, (1, 2)).copy()
    if kind == "pad":
        spec = [(int(rng.integers(0, 7)), int(rng.integers(0, 7))) for _ in range(3)]
        spec[int(rng.integers(3))] = (3, int(rng.integers(3, 9)))
        return np.pad(image, spec), np.pad(mask, spec)
    if kind == "crop":  # up to 5 % of each axis off each end (at least a voxel off one end)
        lo = [int(rng.integers(0, max(1, round(0.05 * n)) + 1)) for n in image.shape]
        hi = [n - int(rng.integers(0, max(1, round(0.05 * n)) + 1)) for n in image.shape]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        return image[box].copy(), mask[box].copy()
    if kind == "zoom":  # at least MIN_SIDE_3D voxels an axis (no fewer than it had)
        f = np.maximum(rng.uniform(0.75, 1.3, 3), np.minimum(1.0, MIN_SIDE_3D / np.array(image.shape)))
        return _zoom(image, f, False), _zoom(mask, f, True)
    if kind == "intensity":
        return (image.astype(np.float32) * rng.uniform(0.7, 1.4) + rng.uniform(-50, 50)).astype(
            np.float32
        ), mask
    if kind == "noise":
        sd = float(np.std(image)) * rng.uniform(0.02, 0.06)
        return (image.astype(np.float32) + rng.normal(0, sd, image.shape)).astype(np.float32), mask
    if kind == "dtype":
        lo, hi = float(image.min()), float(image.max())
        return np.rint((image - lo) / max(hi - lo, 1e-9) * 32000).astype(np.int16), mask
    raise ValueError(f"unknown 3D copy kind {kind!r}")


COPIES_3D: tuple[str, ...] = ("flip", "rot90", "pad", "crop", "zoom", "intensity", "noise", "dtype")


# ---- running the detector on a dict of cases -----------------------------------------------------


def search(
    cases: dict[str, tuple[np.ndarray, np.ndarray | None]], threshold: float | None = None, masks: bool = True
) -> list:
    """``find_near_duplicates`` on ``{id: (image, mask or None)}`` as validate runs it: images
    ``(H, W)``, ``(H, W, 3)`` or ``(Z, Y, X)`` (``volume`` when 3 dimensions and not RGB)."""
    # imported here: the benchmark's baseline run imports this module beside an older detector
    from components.validation.content import image_thumbnail, mask_thumbnails
    from components.validation.near_duplicates import DEFAULT_THRESHOLD, find_near_duplicates

    ids = sorted(cases)
    contents, mask_thumbs, frames = [], [], []
    for cid in ids:
        image, mask = cases[cid]
        rgb = image.ndim == 3 and image.shape[-1] == 3
        thumb = image_thumbnail(np.moveaxis(image, -1, 0) if rgb else image[None])
        pair = mask_thumbnails(mask, thumb) if mask is not None and masks else (None, None)
        contents.append(thumb.content)
        mask_thumbs.append(pair[0])
        frames.append(None if thumb.frame is None else (thumb.frame, pair[1]))
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    return find_near_duplicates(ids, np.stack(contents), limit, mask_thumbs, frames)
