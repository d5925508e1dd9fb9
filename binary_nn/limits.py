"""What this process may allocate: the machine's physical memory and the address-space limit
the process runs under (``ulimit -v``, a batch scheduler's), whichever is smaller.

Every size binary_nn checks before allocating (a run's memory estimate, the arrays an
``.npz`` header declares) is compared with ``available_bytes``, so that what cannot fit
is refused in one sentence instead of ending in a ``MemoryError``.
"""

from __future__ import annotations

import os

try:
    import resource
except ImportError:  # not on every platform
    resource = None  # type: ignore[assignment]


def physical_bytes() -> int | None:
    """Physical memory of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def address_space_bytes() -> int | None:
    """The process's address-space limit (``RLIMIT_AS``), or None when there is none."""
    if resource is None:
        return None
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def available_bytes() -> int | None:
    """The most this process may allocate: the smaller of ``physical_bytes`` and
    ``address_space_bytes`` (None when neither is known)."""
    known = [n for n in (physical_bytes(), address_space_bytes()) if n is not None]
    return min(known) if known else None


def describe(n: int) -> str:
    """``8.0 TB``, ``12.3 GB``, ``456.0 MB``, ``789.0 kB``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
