"""CPU time of another process, for the benchmarks' CPU columns (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_of(pid: int | None) -> float:
    """User+system CPU seconds of process *pid* so far (Linux), 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
