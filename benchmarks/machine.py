"""The machine a figure was taken on, named the same way by every benchmark."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """``N cores (CPU model), M GiB, Python X``; read from /proc where it exists."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = meminfo_kib("MemTotal") / 2**20
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {platform.python_version()}"


def meminfo_kib(key: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
