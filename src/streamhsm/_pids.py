"""Whether a process is alive, by pid (base layer): the shared-memory segments' writer check.

A pid read from a segment header is untrusted: 0 would signal the caller's own process group
and -1 every process, and a pid above the kernel's ``pid_max`` cannot exist, so only
``1..pid_max`` is ever passed to ``os.kill``; a zombie (killed, not yet reaped) counts as dead.
"""

from __future__ import annotations

import functools
import os

__all__ = ["pid_alive", "pid_max"]

_PID_MAX_FALLBACK = 2**22  # PID_MAX_LIMIT on 64-bit Linux


@functools.lru_cache(maxsize=1)
def pid_max() -> int:
    """The largest pid the kernel hands out (``/proc/sys/kernel/pid_max``, else 2**22)."""
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as fh:
            value = int(fh.read(32).strip())
    except (OSError, ValueError):
        return _PID_MAX_FALLBACK
    return value if 0 < value <= _PID_MAX_FALLBACK else _PID_MAX_FALLBACK


def pid_alive(pid: int) -> bool:
    """True if ``pid`` names a running (not zombie) process. A pid outside 1..pid_max (0 would
    signal our own process group, -1 every process) is never a live writer."""
    if not 0 < pid <= pid_max():
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # exists, owned by someone else
    except (OSError, OverflowError):
        return False
    try:  # a killed writer not yet reaped by its parent is a zombie: dead for us
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read(512)
        return data[data.rindex(b")") + 2:][:1] != b"Z"
    except (OSError, ValueError):
        return True
