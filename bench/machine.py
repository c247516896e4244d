"""What a benchmark ran on (shared by the bench scripts' JSON)."""

from __future__ import annotations

import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

from components.training.workers import usable_cores  # the count train.num_workers: auto uses

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def vm_status(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process from /proc/self/status, in MiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def machine_info() -> dict[str, object]:
    """Host, platform, CPU model, core counts and Python version, for a benchmark's JSON."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
    }


def reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def result_path(benchmark: str, quick: bool, device_type: str) -> Path:
    """``bench/results/<benchmark>-[quick-]<host>-<device>.json``, the host name made file-safe."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())
    return RESULTS / f"{benchmark}-{'quick-' if quick else ''}{host}-{device_type}.json"


def device_info(device: Any) -> dict[str, object]:
    """Type, name (the GPU's, else the CPU model) and torch's thread count of a ``torch.device``."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"type": device.type, "name": name, "torch_threads": torch.get_num_threads()}


def write_result(out: Path, result: dict[str, Any]) -> None:
    """Write a benchmark's JSON (one-space indent, trailing newline), creating the folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
