"""Sign and the activations' derivatives, elementwise.

Each compiled loop writes into ``out``, or in place when ``out`` is None: numba compiles the
two cases apart, and the in-place one reads and writes one array, so it vectorises (a loop
handed an ``out`` that aliases its input fails LLVM's runtime overlap check and runs
unvectorised, 4-6x slower).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled


@compiled
def _sign_loop(values: Any, out: Any) -> Any:
    target = values if out is None else out
    for i in range(values.size):
        target[i] = 1 if values[i] > 0 else -1


def sign_numpy(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """See ``sign_into``."""
    # 2 * (v > 0) - 1 without a boolean temporary of the full size
    np.greater(values, 0, out=out)
    out *= 2
    out -= 1
    return out


def sign_numba(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    _sign_loop(values.reshape(-1), None if out is values else out.reshape(-1))
    return out


@compiled
def _passed(g: Any, a: Any, limit: Any) -> Any:
    return g if abs(a) < limit else g - g


@compiled
def _pass_below_loop(grad: Any, a: Any, limit: Any, out: Any) -> Any:
    target = grad if out is None else out
    for i in range(grad.size):
        target[i] = _passed(grad[i], a[i], limit)


def pass_below_numpy(grad: np.ndarray, a: np.ndarray, limit: float, in_place: bool) -> np.ndarray:
    """See ``pass_where_below``."""
    if in_place:
        grad *= np.abs(a) < limit
        return grad
    out = np.abs(a)
    np.less(out, limit, out=out)
    out *= grad
    return out


def pass_below_numba(grad: np.ndarray, a: np.ndarray, limit: float, in_place: bool) -> np.ndarray:
    out = grad if in_place else np.empty_like(grad)
    flat_out = None if in_place else out.reshape(-1)
    _pass_below_loop(grad.reshape(-1), a.reshape(-1), grad.dtype.type(limit), flat_out)
    return out


@compiled
def _times_one_minus_square(g: Any, t: Any, one: Any) -> Any:
    return (one - t * t) * g


@compiled
def _one_minus_square_loop(grad: Any, t: Any, one: Any, out: Any) -> Any:
    target = grad if out is None else out
    for i in range(grad.size):
        target[i] = _times_one_minus_square(grad[i], t[i], one)


def one_minus_square_numpy(grad: np.ndarray, t: np.ndarray, in_place: bool) -> np.ndarray:
    """See ``times_one_minus_square``."""
    if in_place:
        factor = np.multiply(t, t)
        np.subtract(1, factor, out=factor)
        grad *= factor
        return grad
    out = np.multiply(t, t)
    np.subtract(1, out, out=out)
    out *= grad
    return out


def one_minus_square_numba(grad: np.ndarray, t: np.ndarray, in_place: bool) -> np.ndarray:
    out = grad if in_place else np.empty_like(grad)
    flat_out = None if in_place else out.reshape(-1)
    _one_minus_square_loop(grad.reshape(-1), t.reshape(-1), grad.dtype.type(1), flat_out)
    return out
