"""Waiting for a subprocess a test stopped, with a limit scaled to how slow the machine is now.

A fixed limit fails on a loaded 2-core machine and hides nothing on an idle one; what a test
can measure is how long the process took to reach the point where it was stopped (its start,
imports and first steps), and a stop should take a small multiple of that at most. A hang (a
parent waiting forever on a worker) still fails, with what the process printed.
"""

from __future__ import annotations

import subprocess
import time

#: the least time a stop is given, and how many times the measured start it may take
FLOOR_SECONDS = 60.0
FACTOR = 10.0


def communicate_scaled(
    process: subprocess.Popen, started: float, floor: float = FLOOR_SECONDS
) -> tuple:
    """``process.communicate()`` within ``max(floor, FACTOR x (now - started))`` seconds;
    ``started`` is the ``time.monotonic()`` taken just before the process was started."""
    limit = max(floor, FACTOR * (time.monotonic() - started))
    try:
        return process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"the process did not end within {limit:.0f} s of being stopped "
            f"(stdout: {str(out)[-2000:]!r}, stderr: {str(err)[-2000:]!r})"
        ) from None
