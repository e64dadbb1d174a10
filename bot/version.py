"""The code version recorded with every run, so a result can be traced to the code behind it."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from bot import __version__

_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def code_version() -> str:
    """``<package version>+g<commit>`` (``.dirty`` with uncommitted changes) in a git checkout,
    else the package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=_ROOT, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_ROOT, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
