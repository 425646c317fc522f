"""The machine a bench ran on, for the results files (numbers from different machines must not
be confused)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe(*software: str) -> str:
    """Host · CPU model · cores · Python, then ``software`` (e.g. "OpenCV 5.0.0")."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [platform.node(), cpu, f"{os.cpu_count()} cores",
             f"Python {platform.python_version()}", *software]
    return " · ".join(parts)
