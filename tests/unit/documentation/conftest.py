"""The docs generators live in docs/gen (outside the installed packages): make ``docs.gen``
importable however pytest was started (``python -m pytest`` puts the root on sys.path, the
``pytest`` script does not)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
