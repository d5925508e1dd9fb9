"""numba, when installed: how the kernels' loops are compiled, and when they may run.

Reductions may be reordered (so that they vectorise); no fused multiply-add ("contract"), so
that elementwise maps round exactly like their numpy versions. Compiled loops are cached on
disk, so a later process loads them instead of compiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

try:  # optional: every kernel has a numpy version
    import numba
except ImportError:
    numba = None  # type: ignore[assignment]

FASTMATH = {"reassoc", "nsz"}


def compiled(function: Callable[..., Any]) -> Any:
    """``function`` compiled by numba (nogil, cached), or None without numba."""
    if numba is None:
        return None
    try:  # compiled once, then loaded from numba's cache in later processes
        return numba.njit(cache=True, nogil=True, fastmath=FASTMATH)(function)
    except RuntimeError:  # no writable cache directory (a read-only install, no home)
        return numba.njit(cache=False, nogil=True, fastmath=FASTMATH)(function)


def contiguous(*arrays: np.ndarray | None) -> bool:
    """Whether the loops may take these arrays: they walk flat views, which only C-contiguous
    arrays give without a copy (a copy would lose what a loop writes)."""
    return all(a is None or a.flags.c_contiguous for a in arrays)
