"""Optimizer updates applied in place, one pass over a parameter and its gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from .jit import compiled, compiled_dividing
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
    """See ``sgd_update``."""
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
    """The one-pass compiled version of ``sgd_numpy`` (C-contiguous, non-empty arrays)."""
    bound = value.dtype.type(clip if clip > 0 else np.inf)
    flat_value, flat_grad, lr_ = value.reshape(-1), grad.reshape(-1), value.dtype.type(lr)
    if not summarize_grad:
        _sgd_loop(flat_value, flat_grad, lr_, -bound, bound)
        return None
    bits, unsigned, mask = abs_max_bits(flat_grad)
    total, total_sq, top = _sgd_summary_loop(flat_value, flat_grad, bits, mask, lr_, -bound, bound)
    return from_sums(grad.size, total, total_sq, float(unsigned(top).view(grad.dtype)), 0)


@compiled
def _momentum_loop(
    value: Any,
    grad: Any,
    buf: Any,
    lr: Any,
    momentum: Any,
    decay: Any,
    nesterov: Any,
    low: Any,
    high: Any,
) -> Any:
    for i in range(value.size):
        g = grad[i] + decay * value[i]
        b = momentum * buf[i] + g
        buf[i] = b
        d = g + momentum * b if nesterov else b
        v = value[i] - lr * d
        value[i] = min(max(v, low), high)


def momentum_numpy(
    value: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    clip: float,
) -> None:
    """See ``momentum_update``."""
    t = value.dtype.type
    g = grad + t(weight_decay) * value if weight_decay else grad.copy()
    buf *= t(momentum)
    buf += g
    d = g + t(momentum) * buf if nesterov else buf
    value -= t(lr) * d
    if clip > 0:
        np.clip(value, -clip, clip, out=value)


def momentum_numba(
    value: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    clip: float,
) -> None:
    t = value.dtype.type
    bound = t(clip if clip > 0 else np.inf)
    flat = value.reshape(-1), grad.reshape(-1), buf.reshape(-1)
    _momentum_loop(*flat, t(lr), t(momentum), t(weight_decay), nesterov, -bound, bound)


@compiled_dividing
def _adam_loop(
    value: Any,
    grad: Any,
    m: Any,
    v: Any,
    b1: Any,
    c1: Any,
    b2: Any,
    c2: Any,
    step: Any,
    root: Any,
    eps: Any,
    decay: Any,
    shrink: Any,
    low: Any,
    high: Any,
) -> Any:
    for i in range(value.size):
        p = value[i] * shrink
        g = grad[i] + decay * value[i]
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        p = p - step * (mi / (np.sqrt(vi) / root + eps))
        value[i] = min(max(p, low), high)


def adam_numpy(
    value: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled: bool,
    clip: float,
) -> None:
    """See ``adam_update``."""
    s = _adam_scalars(value.dtype, t, lr, betas, eps, weight_decay, decoupled)
    b1, c1, b2, c2, step, root, eps_, decay, shrink = s
    g = grad + decay * value
    value *= shrink
    m *= b1
    m += c1 * g
    v *= b2
    v += c2 * g * g
    value -= step * (m / (np.sqrt(v) / root + eps_))
    if clip > 0:
        np.clip(value, -clip, clip, out=value)


def adam_numba(
    value: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled: bool,
    clip: float,
) -> None:
    s = _adam_scalars(value.dtype, t, lr, betas, eps, weight_decay, decoupled)
    bound = value.dtype.type(clip if clip > 0 else np.inf)
    flat = value.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1)
    _adam_loop(*flat, *s, -bound, bound)


def _adam_scalars(
    dtype: np.dtype,
    t: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled: bool,
) -> tuple[Any, ...]:
    """Adam's scalars for step ``t`` (from 1), in the arrays' dtype: the moments' weights,
    the bias-corrected step size ``lr / (1 - beta1^t)``, ``sqrt(1 - beta2^t)``, eps, the
    coupled weight decay added to the gradient and the decoupled shrink factor."""
    b1, b2 = betas
    k = dtype.type
    decay = 0.0 if decoupled else weight_decay
    shrink = 1.0 - lr * weight_decay if decoupled else 1.0
    step = lr / (1.0 - b1**t)
    root = float(np.sqrt(1.0 - b2**t))
    return k(b1), k(1.0 - b1), k(b2), k(1.0 - b2), k(step), k(root), k(eps), k(decay), k(shrink)


@compiled
def _bop_loop(value: Any, grad: Any, m: Any, keep: Any, rate: Any, threshold: Any) -> Any:
    flips = 0
    for i in range(value.size):
        mi = keep * m[i] + rate * grad[i]
        m[i] = mi
        w = value[i]
        # flip a binary weight whose momentum is large and agrees in sign with it
        if abs(mi) > threshold and (mi > 0) == (w > 0):
            value[i] = -w
            flips += 1
    return flips


def bop_numpy(
    value: np.ndarray, grad: np.ndarray, m: np.ndarray, gamma: float, threshold: float
) -> int:
    """See ``bop_update``."""
    t = value.dtype.type
    m *= t(1.0 - gamma)
    m += t(gamma) * grad
    flip = (np.abs(m) > t(threshold)) & ((m > 0) == (value > 0))
    np.negative(value, out=value, where=flip)
    return int(np.count_nonzero(flip))


def bop_numba(
    value: np.ndarray, grad: np.ndarray, m: np.ndarray, gamma: float, threshold: float
) -> int:
    t = value.dtype.type
    flat = value.reshape(-1), grad.reshape(-1), m.reshape(-1)
    return int(_bop_loop(*flat, t(1.0 - gamma), t(gamma), t(threshold)))
