"""Measure a candidate network on the device: seconds per training step and per inference window,
peak training memory, and augmentation seconds per sample.

The training step is the real one: the registered model, the compound loss (deep supervision
included), the optimiser (AdamW), in the candidate's precision and memory layout (``train.bf16``,
``train.channels_last``), on random inputs of the planned patch and batch. Inference windows run in
float32 (bf16 on CUDA), as the evaluate and ensemble stages' predictors do. A candidate with no
window batch is a probe of precision and layout (:mod:`components.planning.numerics`): only its
training step is timed.
Peak memory on CUDA is ``torch.cuda.max_memory_allocated``; on the CPU it is what autograd keeps
for the backward pass (every saved tensor, counted once per storage) plus weights, gradients and
the optimiser's buffers.

Measurements are cached per machine in ``.segflow/plan-cache/`` (keyed by the candidate, the
augmentation, the device, torch's version and the thread count), so planning the same data for the
same device again gives the same plan, byte for byte, and costs no time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

WARMUP_STEPS = 1
TIMED_STEPS = 5
TIMED_WINDOWS = 3
AUG_SAMPLES = 6
MIN_CALLS = 3  # a median needs three calls: one disturbed call is then outvoted
TIMING_S = 3.0  # after MIN_CALLS, calls stop once they have taken this long together (see _timed)
SLOW_S = 5.0  # a first call this slow is the answer (see _timed)
# How steps are timed (part of the cache key): 3 = the median of at least MIN_CALLS AdamW steps (2
# took a first call over 1 s as the answer: a 0.6 s step disturbed once was planned at 1.48 s);
# 1 was the fastest of three with SGD, 15-35 % under the training loop's steps on 2D data.
METHOD = 3


@dataclass(frozen=True)
class Candidate:
    """One network configuration to measure."""

    model: str
    model_kwargs: str  # JSON of the model's kwargs (patch size and spacing are filled in)
    patch: tuple[int, ...]
    spacing: tuple[float, ...] | None
    batch: int
    in_channels: int
    num_classes: int
    window_batch: int  # 0: a probe, the training step's time only (no memory pass, windows or augmentation)
    transforms: tuple[str, ...]  # JSON of each augmentation entry (for the cache key and the run)
    bf16: bool = False  # the training step under bf16 autocast
    channels_last: bool = False  # ... with the network and its input in channels-last layout


@dataclass(frozen=True)
class Measurement:
    """What one candidate costs on the device."""

    step_s: float
    window_s: float  # one inference forward of ``window_batch`` windows
    memory_bytes: float
    activation_bytes: float
    aug_s: float  # augmentation of one training sample
    parameters: int
    probe: bool = False  # the step's time only (memory, windows and augmentation not measured)


def _model(c: Candidate) -> Any:
    from components.models import build_model
    from components.training.native_data import native_model_kwargs

    kwargs = native_model_kwargs(c.model, json.loads(c.model_kwargs), c.patch, c.spacing)
    return build_model(c.model, c.in_channels, c.num_classes, **kwargs)


def _saved_bytes(model: Any, loss_fn: Any, x: Any, y: Any, precision: Callable[[], Any]) -> float:
    """Bytes autograd keeps for the backward pass of one forward (each storage counted once)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), precision():
        loss = loss_fn(model(x), y)
    loss.backward()
    return float(sum(seen.values()))


def _timed(fn: Any, n: int, sync: Any) -> float:
    """Median of up to ``n`` calls of ``fn`` in seconds (after ``sync``, so device work is counted):
    the training loop pays every step, not the fastest one (on a 2-core CPU the fastest of three
    encoder-U-Net steps was 15 % under the typical one), and a median of :data:`MIN_CALLS` or more
    ignores a call another program disturbed. Calls stop after MIN_CALLS once they have taken
    :data:`TIMING_S` together, and a first call over :data:`SLOW_S` is the answer: a few percent of
    noise on a step of seconds changes no choice, while repeating it would cost the plan minutes of
    the budget (a wide network on a whole megapixel image on a CPU)."""
    times: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        if times[0] > SLOW_S or (len(times) >= MIN_CALLS and sum(times) > TIMING_S):
            break
    return float(statistics.median(times))


def timed_calls(seconds: float, n: int) -> int:
    """How many calls :func:`_timed` makes of a call taking ``seconds`` (at most ``n``)."""
    if seconds > SLOW_S:
        return 1
    return min(n, max(MIN_CALLS, math.floor(TIMING_S / seconds) + 1 if seconds > 0 else n))


def _augmentation_seconds(c: Candidate) -> float:
    """Seconds to augment one sample of the candidate's patch with its transforms."""
    if not c.transforms:
        return 0.0
    from components.preprocessing.native import NativeSpec
    from components.training.native_data import patch_augmentation

    transforms = [json.loads(t) for t in c.transforms]
    spec = NativeSpec(ndim=len(c.patch), channels=c.in_channels, intensity_method="zscore")
    augment, _ = patch_augmentation(transforms, 0, spec, len(c.patch))
    if augment is None:
        return 0.0
    rng = np.random.default_rng(0)
    image = rng.random((c.in_channels, *c.patch), dtype=np.float32)
    mask = rng.integers(0, c.num_classes, c.patch).astype(np.uint8)
    augment(image, mask)  # first call builds lazily
    start = time.perf_counter()
    for _ in range(AUG_SAMPLES):
        augment(image, mask)
    return (time.perf_counter() - start) / AUG_SAMPLES


def measure(c: Candidate, device: str) -> Measurement:
    """Run the candidate's training step and inference forward on ``device`` and time them."""
    import torch

    from components.losses import build_loss
    from components.training.device import autocast, memory_format

    dev = torch.device(device)
    torch.manual_seed(0)
    layout = memory_format(c.channels_last, len(c.patch))
    model = _model(c).to(dev).to(memory_format=layout)
    loss_fn = build_loss([{"name": "dice"}, {"name": "ce"}], c.num_classes)
    # AdamW, the costlier of the plan's two optimisers (two moments per weight, SGD keeps one): a
    # 14 M-parameter encoder's update takes 18 ms of a 0.3 s step on a 2-core CPU with AdamW, 8 with SGD
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(c.batch, c.in_channels, *c.patch, device=dev).contiguous(memory_format=layout)
    y = torch.randint(0, c.num_classes, (c.batch, *c.patch), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(dev, c.bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(WARMUP_STEPS):
        step()
    step_s = _timed(step, TIMED_STEPS, sync)
    params = sum(p.numel() for p in model.parameters())
    if c.window_batch == 0:
        return Measurement(step_s, 0.0, 0.0, 0.0, 0.0, int(params), probe=True)
    activations = _saved_bytes(model, loss_fn, x, y, lambda: autocast(dev, c.bf16))
    if dev.type == "cuda":
        memory = float(torch.cuda.max_memory_allocated(dev))
    else:
        memory = activations + params * 4 * 4  # weights, gradients, momentum, a copy in the step
    window_s = _window_seconds(model.to(memory_format=torch.contiguous_format), c, dev, sync)
    return Measurement(step_s, window_s, memory, activations, _augmentation_seconds(c), int(params))


def _window_seconds(model: Any, c: Candidate, dev: Any, sync: Any) -> float:
    """One inference forward of ``c.window_batch`` windows, as the predictors run it."""
    import torch

    from components.training.device import autocast

    model.eval()
    windows = torch.randn(c.window_batch, c.in_channels, *c.patch, device=dev)

    def forward() -> None:
        with torch.no_grad(), autocast(dev, bf16=dev.type == "cuda"):
            model(windows)

    forward()
    return _timed(forward, TIMED_WINDOWS, sync)


def measuring_seconds(m: Measurement) -> float:
    """Seconds :func:`measure` spends on a candidate, from its own results (the warm-up and timed
    steps, the pass that counts saved bytes, the windows, the augmentation samples): a plan read
    from the cache is estimated exactly as the one that measured."""

    if m.probe:
        return (WARMUP_STEPS + timed_calls(m.step_s, TIMED_STEPS)) * m.step_s
    steps = (WARMUP_STEPS + 1 + timed_calls(m.step_s, TIMED_STEPS)) * m.step_s
    windows = (1 + timed_calls(m.window_s, TIMED_WINDOWS)) * m.window_s if m.window_s else 0.0
    return steps + windows + (1 + AUG_SAMPLES) * m.aug_s


def device_key(device: str) -> dict[str, Any]:
    """What makes a measurement this machine's: the device's name, torch, the threads."""
    import torch

    from components.planning.budget import _cpu_name

    name = torch.cuda.get_device_name(0) if device == "cuda" else _cpu_name()
    return {"device": device, "name": name, "torch": torch.__version__, "threads": torch.get_num_threads()}


class MeasurementCache:
    """Measurements of this machine, one JSON file (written atomically)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "measurements.json"
        self._data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self._used: dict[str, Measurement] = {}  # every measurement this plan used, by key

    @staticmethod
    def key(c: Candidate, device: Mapping[str, Any]) -> str:
        """Cache key of a candidate on a device."""
        blob = json.dumps({"candidate": asdict(c), "device": dict(device), "method": METHOD}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def get(self, key: str) -> Measurement | None:
        """The stored measurement, or None."""
        hit = self._data.get(key)
        if not hit:
            return None
        self._used[key] = Measurement(**hit)
        return self._used[key]

    def put(self, key: str, m: Measurement) -> None:
        """Store a measurement."""
        self._data[key] = asdict(m)
        self._used[key] = m
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def measuring_seconds(self) -> float:
        """Seconds measuring every candidate this plan used takes (cached ones as if measured now)."""
        return sum(measuring_seconds(m) for m in self._used.values())


MeasureFn = Callable[[Candidate, str], Measurement]


def measured(
    c: Candidate, device: str, cache: MeasurementCache | None, measure_fn: MeasureFn | None = None
) -> tuple[Measurement, bool]:
    """The candidate's measurement from the cache, else measured now (``measure_fn``, default
    :func:`measure`; and stored); and whether it came from the cache."""
    key = MeasurementCache.key(c, device_key(device)) if cache is not None else ""
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return hit, True
    m = (measure_fn or measure)(c, device)
    if cache is not None:
        cache.put(key, m)
    return m, False


def transform_entries(transforms: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Augmentation entries as canonical JSON strings (a :class:`Candidate` field)."""
    return tuple(json.dumps(dict(t), sort_keys=True) for t in transforms)
