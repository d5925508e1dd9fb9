"""Optimizer updates applied in place, one pass over a parameter and its gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled
from .statistics import ArrayStatistics, abs_max_bits, accumulate, from_sums, summarize_numpy


@compiled
def _sgd_loop(value: Any, grad: Any, lr: Any, low: Any, high: Any) -> Any:
    for i in range(value.size):
        v = value[i] - lr * grad[i]
        value[i] = min(max(v, low), high)


@compiled
def _sgd_summary_loop(
    value: Any, grad: Any, grad_bits: Any, mask: Any, lr: Any, low: Any, high: Any
) -> Any:
    # the step and the gradient's statistics (as in statistics.py) from one read of it
    total = grad[0] - grad[0]
    total_sq = total
    top = grad_bits[0] ^ grad_bits[0]
    for i in range(value.size):
        g = grad[i]
        total, total_sq, top = accumulate(total, total_sq, top, g, grad_bits[i] & mask)
        v = value[i] - lr * g
        value[i] = min(max(v, low), high)
    return total, total_sq, top


def sgd_numpy(
    value: np.ndarray,
    grad: np.ndarray,
    lr: float,
    clip: float,
    scratch: np.ndarray,
    summarize_grad: bool = False,
) -> ArrayStatistics | None:
    """See :meth:`~binary_nn.nn.kernels.KernelBackend.sgd_update`."""
    summary = summarize_numpy(grad) if summarize_grad else None
    np.multiply(grad, value.dtype.type(lr), out=scratch)
    value -= scratch
    if clip > 0:
        np.clip(value, -clip, clip, out=value)
    return summary


def sgd_numba(
    value: np.ndarray,
    grad: np.ndarray,
    lr: float,
    clip: float,
    scratch: np.ndarray,
    summarize_grad: bool = False,
) -> ArrayStatistics | None:
    """The one-pass compiled version of :func:`sgd_numpy` (C-contiguous, non-empty arrays)."""
    bound = value.dtype.type(clip if clip > 0 else np.inf)
    flat_value, flat_grad, lr_ = value.reshape(-1), grad.reshape(-1), value.dtype.type(lr)
    if not summarize_grad:
        _sgd_loop(flat_value, flat_grad, lr_, -bound, bound)
        return None
    bits, unsigned, mask = abs_max_bits(flat_grad)
    total, total_sq, top = _sgd_summary_loop(flat_value, flat_grad, bits, mask, lr_, -bound, bound)
    return from_sums(grad.size, total, total_sq, float(unsigned(top).view(grad.dtype)), 0)
