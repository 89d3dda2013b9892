"""Peak resident memory of the current process, for the memory checks (bench and tests)."""

from __future__ import annotations

import resource


def peak_rss() -> int:
    """This process's RSS high-water mark in bytes (Linux VmHWM).

    ``ru_maxrss`` is only the fallback: it survives fork+exec on Linux and would report the
    parent's peak in a subprocess.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
