"""What the verifying volume reader costs: ``read_volume`` against SimpleITK's plain read, same run.

``components.io.read_volume`` walks each volume's voxel data once before SimpleITK decodes it (the
data must end where the header says: truncated files, decompression bombs and trailing bytes are
refused) and checks the NIfTI header's grid. This benchmark times, on the same files in the same
process, ``read_volume`` and the bare ``sitk.GetArrayFromImage(sitk.ReadImage(path))`` it wraps,
and reports the ratio (1.0 = free; a scalar NIfTI is decoded once, by the check, so it may be
below 1). Cases: int16 and float32 volumes of a small (MSD-like, 48 x 64 x 48), a CT-slab
(96 x 256 x 256) and a full CT (200 x 512 x 512) size, as ``.nii.gz``, raw
``.nii`` and gzip ``.nrrd``; plus the real MSD Task04 hippocampus set (520 small NIfTI files)
when it is on the machine. Both readers run alternately ``--repeats`` times; the best and the
median time and their ratios are kept (the best is the steadier on a shared machine), with the
load average before and after.

Usage::

    python bench/volume_read.py [--repeats 7] [--quick] [--out bench/results/volume_read-<host>-cpu.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model, machine_info, result_path, write_result
from components.io import read_volume

MSD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "msd_hippocampus"
SIZES = {"small_48x64x48": (48, 64, 48), "slab_96x256x256": (96, 256, 256), "ct_200x512x512": (200, 512, 512)}


def _volume(shape: tuple[int, int, int], dtype: type, seed: int) -> np.ndarray:
    """A smooth phantom with noise (compresses like a scan, not like zeros or white noise)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = (
        ((z - shape[0] / 2) / shape[0]) ** 2
        + ((y - shape[1] / 2) / shape[1]) ** 2
        + ((x - shape[2] / 2) / shape[2]) ** 2
    )
    arr = 800.0 * (body < 0.2) + rng.normal(0.0, 30.0, shape)
    return arr.astype(dtype)


def _plain(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run of each function, run alternately so that load changes hit both alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _summary(times: dict[str, list[float]]) -> dict[str, float]:
    """Best and median seconds of both readers and their ratios (verified / plain)."""
    out: dict[str, float] = {}
    for stat, fn in (("best", min), ("median", statistics.median)):
        plain, verified = fn(times["plain"]), fn(times["verified"])
        out |= {f"plain_{stat}_s": plain, f"verified_{stat}_s": verified, f"ratio_{stat}": verified / plain}
    return out


def _case(path: Path, repeats: int) -> dict[str, float]:
    times = _times({"plain": lambda: _plain(path), "verified": lambda: read_volume(path)}, repeats)
    return {**_summary(times), "file_mb": path.stat().st_size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small and slab sizes only, 3 repeats")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import SimpleITK as sitk

    repeats = 3 if args.quick else args.repeats
    sizes = {k: v for k, v in SIZES.items() if not (args.quick and k.startswith("ct_"))}
    load_before = os.getloadavg()
    cases: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size_name, shape in sizes.items():
            for dtype in (np.int16, np.float32):
                image = sitk.GetImageFromArray(_volume(shape, dtype, seed=1))
                for suffix, compress in ((".nii.gz", True), (".nii", False), (".nrrd", True)):
                    name = f"{size_name}_{np.dtype(dtype).name}_{suffix.lstrip('.')}"
                    # one folder per file: asked for v.nii.gz, SimpleITK reads a v.nii beside it
                    path = Path(tmp) / name / f"v{suffix}"
                    path.parent.mkdir()
                    sitk.WriteImage(image, str(path), useCompression=compress)
                    cases[name] = _case(path, repeats)
                    row = cases[name]
                    print(
                        f"{name:36s} plain {row['plain_best_s'] * 1e3:8.1f} ms  ratio {row['ratio_best']:.2f}"
                    )
    files = sorted(MSD.glob("*/*.nii.gz"))
    if files:
        times = _times(
            {
                "plain": lambda: [_plain(f) for f in files],
                "verified": lambda: [read_volume(f) for f in files],
            },
            max(2, repeats // 2),
        )
        cases["msd_hippocampus_520_files"] = {**_summary(times), "files": len(files)}
        row = cases["msd_hippocampus_520_files"]
        label = "msd_hippocampus (520 files)"
        print(f"{label:36s} plain {row['plain_best_s']:8.2f} s  ratio {row['ratio_best']:.2f}")
    result = {
        "benchmark": "volume_read",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "device": {"type": "cpu", "name": cpu_model()},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "repeats": repeats,
        "baseline": "sitk.GetArrayFromImage(sitk.ReadImage(path)), same files, same process",
        "cases": cases,
    }
    out = args.out or result_path("volume_read", args.quick, "cpu")
    write_result(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
