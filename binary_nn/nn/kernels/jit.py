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
    return _compile(function, {})


def compiled_dividing(function: Callable[..., Any]) -> Any:
    """``compiled``, for a loop that divides: with numpy's error model (a division by zero
    gives inf, as in numpy, instead of raising), whose loop LLVM can vectorise — Python's
    model checks every division, which keeps a loop scalar (7x slower for Adam's step)."""
    return _compile(function, {"error_model": "numpy"})


def _compile(function: Callable[..., Any], options: dict[str, Any]) -> Any:
    if numba is None:
        return None
    try:  # compiled once, then loaded from numba's cache in later processes
        return numba.njit(cache=True, nogil=True, fastmath=FASTMATH, **options)(function)
    except RuntimeError:  # no writable cache directory (a read-only install, no home)
        return numba.njit(cache=False, nogil=True, fastmath=FASTMATH, **options)(function)


def contiguous(*arrays: np.ndarray | None) -> bool:
    """Whether the loops may take these arrays: they walk flat views, which only C-contiguous
    arrays give without a copy (a copy would lose what a loop writes)."""
    return all(a is None or a.flags.c_contiguous for a in arrays)
