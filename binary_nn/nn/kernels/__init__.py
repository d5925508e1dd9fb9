"""Fused kernels: one pass over memory where numpy needs several, behind one backend object.

A ``KernelBackend`` gives every kernel (statistics, optimizer updates, sign and the
activations' derivatives, batch norm, im2col/col2im, max pooling). ``NUMPY`` is plain
numpy; ``NUMBA`` compiles the same computations into loops when numba is installed
(``pip install "binary-nn[fast]"``), and is None otherwise. A network, its layers and its
optimizer use the backend they were built with (``default_kernels`` unless told:
numba when installed, unless ``BINARY_NN_KERNELS=numpy``), so two networks in one process
can use different backends, and nothing switches them behind a caller's back.

One subject per module: ``statistics``, ``updates``, ``elementwise``,
``batchnorm``, ``patches``, ``pooling``; ``jit`` compiles the loops and
``backend`` puts them behind the two objects.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, TypeAlias

from .backend import KernelBackend, NumbaKernels
from .jit import numba
from .statistics import ArrayStatistics

#: an array of a kernel backend: numpy's, or torch's or CuPy's (see ``array_api``)
Array: TypeAlias = Any

KERNELS_ENV = "BINARY_NN_KERNELS"
KERNEL_CHOICES = ("auto", "numpy", "numba")

NUMPY = KernelBackend()
NUMBA: NumbaKernels | None = NumbaKernels() if numba is not None else None

#: the name release 0.1 gave ``ArrayStatistics``
Summary = ArrayStatistics


def kernels_named(name: str) -> KernelBackend:
    """``numpy``, ``numba`` (numpy when numba is missing) or ``auto`` (numba when installed)."""
    if name == "numpy" or NUMBA is None:
        return NUMPY
    return NUMBA


#: what ``--backend`` takes: numpy (the numba kernels when installed), or an array library
BACKENDS = ("numpy", "torch", "cupy")


def backend_kernels(backend: str, device: str = "cpu") -> KernelBackend:
    """The kernels of ``backend`` (one of ``BACKENDS``) on ``device`` (``cpu``, ``cuda``,
    ``cuda:N``). ImportError when the library is missing, ValueError when the device is not
    there (or numpy is asked for a GPU)."""
    if backend == "numpy":
        if device != "cpu":
            raise ValueError("numpy computes on the CPU; use --backend torch or cupy on a GPU")
        return default_kernels()
    from .array_api import array_kernels

    return array_kernels(backend, device)


def default_kernels() -> KernelBackend:
    """The backend ``$BINARY_NN_KERNELS`` names (``auto`` when unset)."""
    choice = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if choice not in KERNEL_CHOICES:  # a warning, not an error: it must not stop a run
        warnings.warn(
            f"{KERNELS_ENV} must be one of {', '.join(KERNEL_CHOICES)}, got {choice!r}; using auto",
            stacklevel=2,
        )
        choice = "auto"
    return kernels_named(choice)


__all__ = [
    "BACKENDS",
    "KERNELS_ENV",
    "NUMBA",
    "NUMPY",
    "Array",
    "ArrayStatistics",
    "KernelBackend",
    "NumbaKernels",
    "Summary",
    "backend_kernels",
    "default_kernels",
    "kernels_named",
    "numba",
]
