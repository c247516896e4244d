"""What the plan plans for: the device, its memory and the time the whole run may take (``plan.*``).

Defaults, stated in the plan report when they are used:

- ``plan.device: auto`` is CUDA when a GPU is visible, else the CPU.
- ``plan.memory_gb: auto`` is the GPU's memory less 10 % (CUDA's own context and fragmentation), or
  on the CPU a quarter of the RAM, at most :data:`CPU_MEMORY_CAP_GB` (the rest stays with the
  loader's cached cases, the OS and other users of a shared machine).
- ``plan.time_budget: auto`` is :data:`DEFAULT_TIME_BUDGET` per device: an hour on a CPU (a first,
  useful run), a day on a GPU (the order of nnU-Net's own five folds).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

from components.params.config import AUTO, PlanConfig, duration_seconds
from components.planning.decision import PlanError

DEFAULT_TIME_BUDGET: dict[str, str] = {"cpu": "1h", "cuda": "24h"}
CPU_MEMORY_FRACTION = 0.25
CPU_MEMORY_CAP_GB = 16.0
GPU_MEMORY_FRACTION = 0.9


@dataclass(frozen=True)
class Budget:
    """The resolved device, memory and time, each with where it came from."""

    device: str  # "cpu" | "cuda"
    device_name: str
    memory_gb: float
    memory_source: str
    seconds: float
    time_text: str
    time_source: str
    threads: int

    def describe(self) -> dict[str, Any]:
        """JSON-ready form (plan.json)."""
        return {
            "device": self.device,
            "device_name": self.device_name,
            "memory_gb": round(self.memory_gb, 2),
            "memory_source": self.memory_source,
            "time_budget": self.time_text,
            "time_budget_s": round(self.seconds, 1),
            "time_source": self.time_source,
            "threads": self.threads,
        }


def _ram_gb() -> float:
    """Physical memory of this machine in GiB (Linux / macOS)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 2**30
    except (ValueError, OSError, AttributeError):
        return 8.0  # a conservative guess where the OS does not say


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else the platform's processor."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def resolve_device(setting: str, cuda_available: bool) -> str:
    """``plan.device`` -> ``"cpu"`` or ``"cuda"``.

    Raises:
        PlanError: ``cuda`` asked for where no GPU is visible.
    """
    if setting == AUTO:
        return "cuda" if cuda_available else "cpu"
    if setting == "cuda" and not cuda_available:
        raise PlanError(
            "plan.device is 'cuda' but no CUDA device is visible to this process (torch.cuda."
            "is_available() is False); plan for this machine with plan.device: auto (or cpu), or run "
            "on a machine with a GPU"
        )
    return setting


def resolve_budget(cfg: PlanConfig, threads: int) -> Budget:
    """The device, memory and time budget ``cfg`` (``plan.*``) asks for, on this machine."""
    import torch

    device = resolve_device(cfg.device, torch.cuda.is_available())
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name, device_gb = str(props.name), props.total_memory / 2**30
        own_gb = device_gb * GPU_MEMORY_FRACTION
        own_text = f"{GPU_MEMORY_FRACTION:.0%} of the GPU's {device_gb:.1f} GB"
    else:
        name = f"{_cpu_name()} ({threads} threads)"
        device_gb = _ram_gb()
        own_gb = min(device_gb * CPU_MEMORY_FRACTION, CPU_MEMORY_CAP_GB)
        cap = f"at most {CPU_MEMORY_CAP_GB:g} GB"
        own_text = f"{CPU_MEMORY_FRACTION:.0%} of the {device_gb:.1f} GB RAM, {cap}"
    if cfg.memory_gb == AUTO:
        memory_gb, memory_source = own_gb, f"auto: {own_text}"
    else:
        memory_gb, memory_source = float(cfg.memory_gb), "yours (plan.memory_gb)"
        if memory_gb > device_gb:
            raise PlanError(
                f"plan.memory_gb {memory_gb:g} is more than the {device} has ({device_gb:.1f} GB); "
                f"give at most {device_gb:.0f}, or auto"
            )
    if cfg.time_budget == AUTO:
        text = DEFAULT_TIME_BUDGET[device]
        time_source = f"auto: the default for the {device} ({text}); set plan.time_budget for yours"
    else:
        text, time_source = cfg.time_budget, "yours (plan.time_budget)"
    return Budget(
        device=device,
        device_name=name,
        memory_gb=memory_gb,
        memory_source=memory_source,
        seconds=duration_seconds(text),
        time_text=text,
        time_source=time_source,
        threads=threads,
    )


def format_duration(seconds: float) -> str:
    """Seconds as ``1h05m``, ``12m30s`` or ``45s``."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"
