"""When a warm stage server may run a stage command: only what can change the stage's imports or results.

A stage forked from a warm server (:mod:`flows.runtime.warm`) runs with the command's own
environment, working directory and streams; what it cannot have as the command has it is what the
server's interpreter did before the fork: which interpreter and ``sys.path`` imported the code, and
the settings the libraries read once, at import (Prefect's settings, OpenMP/BLAS thread pools, the
CUDA and allocator settings, caches and config folders, the locale). Only those are compared
(:data:`IMPORT_TIME_PREFIXES`, :data:`IMPORT_TIME_KEYS`, :func:`interpreter`).

Everything else may differ: the prompt (``source .venv/bin/activate`` exports ``PS1``, which the
shell DVC runs each stage in drops again), the terminal, ``PATH`` and ``VIRTUAL_ENV`` (what they
decide, the interpreter, is compared itself), shell and per-run variables (``DVC_*``,
``SEGFLOW_*``, read when the stage runs, in the child). Stdlib only: it runs in every stage command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

# Read at import by the libraries the stages import (or by the interpreter at start-up).
IMPORT_TIME_PREFIXES = (
    "PREFECT_",  # Prefect's settings object, built at import
    "MLFLOW_",
    "PYTHON",  # PYTHONPATH, PYTHONHASHSEED, PYTHONWARNINGS, ...
    "OMP_",  # OpenMP / BLAS / torch thread pools and their wait policy
    "KMP_",
    "GOMP_",
    "MKL_",
    "OPENBLAS_",
    "BLIS_",
    "VECLIB_",
    "GOTO_",
    "NUMEXPR_",
    "NUMBA_",
    "TORCH",  # TORCH_HOME, TORCHINDUCTOR_*, ...
    "PYTORCH_",
    "CUDA_",
    "CUBLAS",
    "CUDNN_",
    "NCCL_",
    "NVIDIA_",
    "TRITON_",
    "LD_",  # what the dynamic loader loads
    "MALLOC_",
    "LC_",  # the locale
    "DASK_",  # dask.config, read at import
    "ARROW_",
    "GX_",
    "GE_",
    "MPL",  # matplotlib's config folder and backend
    "OPENCV_",
    "ALBUMENTATIONS",
    "NO_ALBUMENTATIONS_UPDATE",
    "MONAI_",
    "SITK_",
    "ITK_",
    "HF_",
    "TIMM_",
    "GIT_PYTHON",  # GitPython (MLflow) finds git at import
)
IMPORT_TIME_KEYS = frozenset(
    {
        "HOME",  # Prefect's home (~/.prefect), caches under ~
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
    }
)


def comparable_env(env: Mapping[str, str]) -> dict[str, str]:
    """The keys of ``env`` that can change a stage's imports or results (see the module doc)."""
    return {k: v for k, v in env.items() if k in IMPORT_TIME_KEYS or k.startswith(IMPORT_TIME_PREFIXES)}


def interpreter() -> dict[str, Any]:
    """Which interpreter, and from where, this process imports (a venv's python is its ``prefix``)."""
    return {
        "executable": os.path.realpath(sys.executable),  # python, python3, python3.11: one binary
        "prefix": sys.prefix,
        "version": sys.version,
        "path": list(sys.path),
    }


def difference(
    env: Mapping[str, str],
    interp: Mapping[str, Any],
    own_env: Mapping[str, str],
    own_interp: Mapping[str, Any],
) -> str | None:
    """Why a command of ``env`` and ``interp`` must not run in the server of ``own_env`` and
    ``own_interp`` (None: it may); names at most five variables."""
    for what in ("executable", "prefix", "version", "path"):
        if interp.get(what) != own_interp.get(what):
            shown = "sys.path" if what == "path" else f"the interpreter's {what}"
            return f"{shown} differs from the warm server's ({interp.get(what)!r})"
    mine, theirs = comparable_env(env), comparable_env(own_env)
    differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if differ:
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        return f"environment differs from the warm server's: {', '.join(differ[:5])}{more} (read at import)"
    return None
