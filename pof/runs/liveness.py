"""Whether the process a run's status names still runs: on this machine the process itself is the
truth (a long step may be silent for minutes, but a job whose process is gone never reports again).
"""

from __future__ import annotations

import os
from pathlib import Path


def _boot_time() -> float | None:  # read each time: it moves with the wall clock when that is set
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether process `pid` lives and, given `since` (when it last wrote the status), is the same
    process: one started later only reuses its number (after a reboot or a container restart)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, OSError):
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a killed child that its parent (e.g. the app) has not reaped yet
            return False
        boot = _boot_time()
        if since is not None and boot is not None:
            started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            return started <= since + 5.0  # slack: btime has whole seconds, clocks get adjusted
    except (OSError, IndexError, ValueError):
        pass  # no /proc (macOS): the signal's answer stands
    return True


def is_mine(pid) -> bool:
    """A status pid that stands for this process: pof.runs.jobqueue queues a folder under its own
    pid and then execs into the job, which keeps that pid."""
    return pid == os.getpid()
