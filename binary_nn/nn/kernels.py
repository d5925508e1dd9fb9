"""Fused elementwise kernels: one pass over memory where numpy needs several.

Every function here has two implementations that compute the same thing in the same order of
operations: a numba-compiled loop, used when numba is installed (``pip install
"binary-nn[fast]"``), and plain numpy, used otherwise or when the environment variable
``BINARY_NN_KERNELS=numpy`` is set. Between the two, only the summation order of reductions
differs, so results agree to rounding (``tests/test_kernels.py`` checks them against each
other). The numpy versions make several passes with temporaries, the numba ones one or two.

Arrays are float32 or float64, and scalars are cast to the arrays' dtype, so a float32 model
never computes in float64. The numba loops take C-contiguous arrays; any other layout takes
the numpy path.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, NamedTuple

import numpy as np

try:  # optional: the numpy versions below are used without it
    import numba
except ImportError:
    numba = None  # type: ignore[assignment]

KERNELS_ENV = "BINARY_NN_KERNELS"
KERNEL_BACKENDS = ("auto", "numpy")


def default_backend() -> str:
    """``"numba"`` when numba is importable and ``$BINARY_NN_KERNELS`` is not ``numpy``."""
    choice = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if choice not in KERNEL_BACKENDS:  # a warning, not an error: it must not stop an import
        warnings.warn(
            f"{KERNELS_ENV} must be one of {', '.join(KERNEL_BACKENDS)}, got {choice!r}; "
            "using auto",
            stacklevel=2,
        )
        choice = "auto"
    return "numba" if numba is not None and choice == "auto" else "numpy"


#: Which implementation the functions below run; tests switch it to compare the two.
BACKEND = default_backend()

# reductions may be reordered (so they vectorise); no fused multiply-add ("contract"), so
# that maps round exactly like the numpy versions
_FASTMATH = {"reassoc", "nsz"}


def _compile(function):
    if numba is None:
        return None
    try:  # compiled once, then loaded from numba's cache in later processes
        return numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)(function)
    except RuntimeError:  # no writable cache directory (a read-only install, no home)
        return numba.njit(cache=False, nogil=True, fastmath=_FASTMATH)(function)


def _use_numba(*arrays: np.ndarray) -> bool:
    # the loops walk flat views, which only C-contiguous arrays give without a copy (a copy
    # would lose what a loop writes); anything else takes the numpy path
    return BACKEND == "numba" and all(a.flags.c_contiguous for a in arrays)


# --- summary statistics --------------------------------------------------------------------


class Summary(NamedTuple):
    """What the per-iteration statistics need from an array, from one pass over it."""

    mean: float
    variance: float
    abs_max: float
    fraction_above: float  # of |values| > threshold


# the unsigned integer of a float's width, and the mask that clears its sign bit
_UNSIGNED = {4: (np.uint32, np.uint32(0x7FFFFFFF)), 8: (np.uint64, np.uint64(2**63 - 1))}


@_compile
def _accumulate(total, total_sq, top, v, magnitude):
    # one element into the sums and the largest |v|: |v| as the bits of v with the sign
    # cleared, since for finite floats those unsigned integers order like the absolute values
    # and an integer max vectorises where a float max does not. The sums stay in the arrays'
    # dtype: float64 accumulators would not vectorise
    return total + v, total_sq + v * v, magnitude if magnitude > top else top


@_compile
def _summary_loop(values, bits, mask, threshold_bits):
    total = values[0] - values[0]
    total_sq = total
    top = bits[0] ^ bits[0]
    n_above = top
    one = top + 1
    for i in range(values.size):
        magnitude = bits[i] & mask
        total, total_sq, top = _accumulate(total, total_sq, top, values[i], magnitude)
        n_above += one if magnitude > threshold_bits else top ^ top
    return total, total_sq, top, n_above


def summarize(values: np.ndarray, threshold: float = np.inf) -> Summary:
    """Mean, variance, largest ``|v|`` and the fraction of ``|v| > threshold`` of ``values``.

    The variance is ``mean(v^2) - mean(v)^2``, floored at 0; the sums are accumulated in the
    dtype of ``values``.
    """
    flat = values.reshape(-1)
    n = flat.size
    if n == 0:
        return Summary(0.0, 0.0, 0.0, 0.0)
    if _use_numba(values):
        bits, unsigned, mask = _abs_max_bits(flat)
        limit = flat.dtype.type(abs(threshold)).view(unsigned)  # inf: nothing finite is above
        total, total_sq, top, n_above = _summary_loop(flat, bits, mask, limit)
        abs_max = float(unsigned(top).view(flat.dtype))
    else:
        # summing rows adds whole rows at a time, faster than a flat sum; the dot is BLAS
        total = values.sum(axis=0).sum() if values.ndim == 2 else flat.sum()
        total_sq = float(np.dot(flat, flat))
        abs_max = float(max(flat.max(), -flat.min()))
        n_above = np.count_nonzero(np.abs(flat) > threshold) if np.isfinite(threshold) else 0
    return _summary(n, total, total_sq, abs_max, n_above)


def _summary(n: int, total: float, total_sq: float, abs_max: float, n_above: int) -> Summary:
    mean = float(total) / n
    variance = max(float(total_sq) / n - mean * mean, 0.0)
    return Summary(mean, variance, abs_max, int(n_above) / n)


def _abs_max_bits(values: np.ndarray) -> tuple[np.ndarray, type, Any]:
    """``values`` as unsigned integers of its width, the type, and the sign-clearing mask."""
    unsigned, mask = _UNSIGNED[values.dtype.itemsize]
    return values.view(unsigned), unsigned, mask


# --- the optimizer step ----------------------------------------------------------------------


@_compile
def _sgd_loop(value, grad, lr, low, high):
    for i in range(value.size):
        v = value[i] - lr * grad[i]
        value[i] = min(max(v, low), high)


@_compile
def _sgd_summary_loop(value, grad, grad_bits, mask, lr, low, high):
    # the step and the gradient's summary (as in _summary_loop) from one read of the gradient
    total = grad[0] - grad[0]
    total_sq = total
    top = grad_bits[0] ^ grad_bits[0]
    for i in range(value.size):
        g = grad[i]
        total, total_sq, top = _accumulate(total, total_sq, top, g, grad_bits[i] & mask)
        v = value[i] - lr * g
        value[i] = min(max(v, low), high)
    return total, total_sq, top


def sgd_update(
    value: np.ndarray,
    grad: np.ndarray,
    lr: float,
    clip: float,
    scratch: np.ndarray,
    summarize_grad: bool = False,
) -> Summary | None:
    """``value -= lr * grad`` in place, then clipped to ``[-clip, clip]`` when ``clip > 0``.

    With ``summarize_grad``, also returns ``summarize(grad)``, taken in the same pass over
    ``grad`` by the numba version. ``scratch`` (shaped like ``value``) holds ``lr * grad`` in
    the numpy version.
    """
    if _use_numba(value, grad) and grad.size > 0:
        bound = value.dtype.type(clip if clip > 0 else np.inf)
        flat_value, flat_grad, lr_ = value.reshape(-1), grad.reshape(-1), value.dtype.type(lr)
        if not summarize_grad:
            _sgd_loop(flat_value, flat_grad, lr_, -bound, bound)
            return None
        bits, unsigned, mask = _abs_max_bits(flat_grad)
        total, total_sq, top = _sgd_summary_loop(
            flat_value, flat_grad, bits, mask, lr_, -bound, bound
        )
        return _summary(grad.size, total, total_sq, float(unsigned(top).view(grad.dtype)), 0)
    summary = summarize(grad) if summarize_grad else None
    np.multiply(grad, value.dtype.type(lr), out=scratch)
    value -= scratch
    if clip > 0:
        np.clip(value, -clip, clip, out=value)
    return summary


# --- sign ---------------------------------------------------------------------------------------


@_compile
def _sign_loop(values, out):
    for i in range(values.size):
        out[i] = 1 if values[i] > 0 else -1


@_compile
def _sign_in_place_loop(values):  # its own loop: see the activation derivatives below
    for i in range(values.size):
        values[i] = 1 if values[i] > 0 else -1


def sign_into(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = +1 where values > 0, else -1`` (0 maps to -1); returns ``out`` (which may be
    ``values`` itself)."""
    if _use_numba(values, out):
        if out is values:
            _sign_in_place_loop(values.reshape(-1))
        else:
            _sign_loop(values.reshape(-1), out.reshape(-1))
        return out
    # 2 * (v > 0) - 1 without a boolean temporary of the full size
    np.greater(values, 0, out=out)
    out *= 2
    out -= 1
    return out


# --- activation derivatives --------------------------------------------------------------------


# An in-place variant is its own loop over one array: a loop whose output aliases an input
# fails LLVM's runtime overlap check and runs unvectorised, 4-6x slower.


@_compile
def _passed(g, a, limit):
    return g if abs(a) < limit else g - g


@_compile
def _pass_below_loop(grad, a, limit, out):
    for i in range(grad.size):
        out[i] = _passed(grad[i], a[i], limit)


@_compile
def _pass_below_in_place_loop(grad, a, limit):
    for i in range(grad.size):
        grad[i] = _passed(grad[i], a[i], limit)


def pass_where_below(
    grad: np.ndarray, a: np.ndarray, limit: float, in_place: bool = False
) -> np.ndarray:
    """``grad`` where ``|a| < limit``, else 0 (a new array, or ``grad`` itself ``in_place``)."""
    out = grad if in_place else np.empty_like(grad)
    if _use_numba(grad, a):
        flat, limit_ = grad.reshape(-1), grad.dtype.type(limit)
        if in_place:
            _pass_below_in_place_loop(flat, a.reshape(-1), limit_)
        else:
            _pass_below_loop(flat, a.reshape(-1), limit_, out.reshape(-1))
        return out
    if in_place:
        grad *= np.abs(a) < limit
        return grad
    np.abs(a, out=out)
    np.less(out, limit, out=out)
    out *= grad
    return out


@_compile
def _times_one_minus_square(g, t, one):
    return (one - t * t) * g


@_compile
def _one_minus_square_loop(grad, t, one, out):
    for i in range(grad.size):
        out[i] = _times_one_minus_square(grad[i], t[i], one)


@_compile
def _one_minus_square_in_place_loop(grad, t, one):
    for i in range(grad.size):
        grad[i] = _times_one_minus_square(grad[i], t[i], one)


def times_one_minus_square(grad: np.ndarray, t: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``grad * (1 - t^2)`` (a new array, or ``grad`` itself ``in_place``): the tanh
    derivative from ``t = tanh(a)``."""
    out = grad if in_place else np.empty_like(grad)
    if _use_numba(grad, t):
        flat, one = grad.reshape(-1), grad.dtype.type(1)
        if in_place:
            _one_minus_square_in_place_loop(flat, t.reshape(-1), one)
        else:
            _one_minus_square_loop(flat, t.reshape(-1), one, out.reshape(-1))
        return out
    if in_place:
        factor = np.multiply(t, t)
        np.subtract(1, factor, out=factor)
        grad *= factor
        return grad
    np.multiply(t, t, out=out)
    np.subtract(1, out, out=out)
    out *= grad
    return out


# --- batch normalisation -----------------------------------------------------------------------


@_compile
def _scale_shift_loop(x, scale, shift, out):
    n, features = x.shape
    for i in range(n):
        for j in range(features):
            out[i, j] = x[i, j] * scale[j] + shift[j]


def scale_shift(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * scale + shift`` per feature (a new array): batch norm in evaluation mode."""
    out = np.empty_like(x)
    if _use_numba(x, out) and x.ndim == 2:
        _scale_shift_loop(x, scale, shift, out)
        return out
    np.multiply(x, scale, out=out)
    out += shift
    return out


@_compile
def _batchnorm_train_loop(x, gamma, beta, eps, count, x_hat, out, mean, var):
    n, features = x.shape
    mean[:] = 0
    var[:] = 0
    for i in range(n):
        for j in range(features):
            mean[j] += x[i, j]
    mean /= count
    for i in range(n):
        for j in range(features):
            d = x[i, j] - mean[j]
            x_hat[i, j] = d
            var[j] += d * d
    var /= count
    inv_std = np.sqrt(var + eps)
    for j in range(features):
        inv_std[j] = count / count / inv_std[j]  # 1 / std in the arrays' dtype
    for i in range(n):
        for j in range(features):
            h = x_hat[i, j] * inv_std[j]
            x_hat[i, j] = h
            out[i, j] = h * gamma[j] + beta[j]
    return inv_std


def batchnorm_train(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch norm of ``x`` (batch, features) with the batch's statistics.

    Returns ``out = x_hat * gamma + beta``, ``x_hat``, the batch mean, the biased batch
    variance and ``inv_std = 1 / sqrt(var + eps)``.
    """
    if _use_numba(x):
        x_hat, out = np.empty_like(x), np.empty_like(x)
        mean, var = np.empty_like(gamma), np.empty_like(gamma)
        eps_, count = x.dtype.type(eps), x.dtype.type(x.shape[0])
        inv_std = _batchnorm_train_loop(x, gamma, beta, eps_, count, x_hat, out, mean, var)
        return out, x_hat, mean, var, inv_std
    mean = x.mean(axis=0)
    x_hat = np.subtract(x, mean)
    var = np.einsum("ij,ij->j", x_hat, x_hat) / x.shape[0]
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    x_hat *= inv_std
    out = np.multiply(x_hat, gamma)
    out += beta
    return out, x_hat, mean, var, inv_std


@_compile
def _batchnorm_grads_loop(grad, x_hat, gamma_grad, beta_grad):
    n, features = grad.shape
    gamma_grad[:] = 0
    beta_grad[:] = 0
    for i in range(n):
        for j in range(features):
            g = grad[i, j]
            beta_grad[j] += g
            gamma_grad[j] += g * x_hat[i, j]


@_compile
def _batchnorm_input_grad(g, x_hat, gamma_grad, beta_grad, count, scale):
    return (g * count - beta_grad - x_hat * gamma_grad) * scale


@_compile
def _batchnorm_input_grad_loop(grad, x_hat, gamma_grad, beta_grad, count, scale, out):
    n, features = grad.shape
    for i in range(n):
        for j in range(features):
            out[i, j] = _batchnorm_input_grad(
                grad[i, j], x_hat[i, j], gamma_grad[j], beta_grad[j], count, scale[j]
            )


@_compile
def _batchnorm_input_grad_in_place_loop(grad, x_hat, gamma_grad, beta_grad, count, scale):
    n, features = grad.shape
    for i in range(n):
        for j in range(features):
            grad[i, j] = _batchnorm_input_grad(
                grad[i, j], x_hat[i, j], gamma_grad[j], beta_grad[j], count, scale[j]
            )


def batchnorm_backward(
    grad: np.ndarray,
    x_hat: np.ndarray,
    gamma: np.ndarray,
    inv_std: np.ndarray,
    gamma_grad: np.ndarray,
    beta_grad: np.ndarray,
    need_input_grad: bool,
    in_place: bool = False,
) -> np.ndarray | None:
    """Fill ``gamma_grad`` and ``beta_grad``; return the exact input gradient if asked (in
    ``grad`` itself ``in_place``).

    The input gradient goes through the batch mean and variance:
    ``(n * grad - sum(grad) - x_hat * sum(grad * x_hat)) * gamma * inv_std / n``.
    """
    n = grad.shape[0]
    scale = gamma * inv_std / grad.dtype.type(n)
    if _use_numba(grad, x_hat):
        _batchnorm_grads_loop(grad, x_hat, gamma_grad, beta_grad)
        if not need_input_grad:
            return None
        count = grad.dtype.type(n)
        if in_place:
            _batchnorm_input_grad_in_place_loop(grad, x_hat, gamma_grad, beta_grad, count, scale)
            return grad
        out = np.empty_like(grad)
        _batchnorm_input_grad_loop(grad, x_hat, gamma_grad, beta_grad, count, scale, out)
        return out
    np.sum(grad, axis=0, out=beta_grad)
    np.einsum("ij,ij->j", grad, x_hat, out=gamma_grad)
    if not need_input_grad:
        return None
    out = np.multiply(grad, n, out=grad if in_place else None)
    out -= beta_grad
    out -= x_hat * gamma_grad
    out *= scale
    return out


# --- convolution: images to patches and back ---------------------------------------------------


@_compile
def _im2col_loop(padded, k, out):
    n_, hp, wp, c = padded.shape
    h, w = hp - k + 1, wp - k + 1
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                row = (n * h + i) * w + j
                for di in range(k):
                    for dj in range(k):
                        col = (di * k + dj) * c
                        for ch in range(c):
                            out[row, col + ch] = padded[n, i + di, j + dj, ch]


def im2col(padded: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
    """The ``k x k`` patches of a zero-padded channels-last batch (N, H + k - 1, W + k - 1,
    C): one row per output position, (N*H*W, k*k*C), in the weights' (row, column, channel)
    order; into ``out`` when given."""
    n, hp, wp, c = padded.shape
    rows = n * (hp - k + 1) * (wp - k + 1)
    out = np.empty((rows, k * k * c), padded.dtype) if out is None else out
    if _use_numba(padded, out):
        _im2col_loop(padded, k, out)
        return out
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    # (N, H, W, C, K, K) -> (N, H, W, K, K, C)
    out.reshape(n, hp - k + 1, wp - k + 1, k, k, c)[...] = windows.transpose(0, 1, 2, 4, 5, 3)
    return out


@_compile
def _col2im_loop(cols, out):
    n_, h, w, k, _, c = cols.shape
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                for di in range(k):
                    for dj in range(k):
                        for ch in range(c):
                            out[n, i + di, j + dj, ch] += cols[n, i, j, di, dj, ch]


def col2im(cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each patch (N, H, W, K, K, C) added back into a zero-padded (N, H + K - 1, W + K - 1,
    C) batch (into ``out``, when given, adding to what it holds): a convolution's input
    gradient from its patches' gradients (one pass in numba, K*K strided additions in
    numpy)."""
    n, h, w, k, _, c = cols.shape
    out = np.zeros((n, h + k - 1, w + k - 1, c), cols.dtype) if out is None else out
    if _use_numba(cols, out):
        _col2im_loop(cols, out)
        return out
    for i in range(k):
        for j in range(k):
            out[:, i : i + h, j : j + w, :] += cols[:, :, :, i, j, :]
    return out


# --- max pooling ---------------------------------------------------------------------------------


@_compile
def _maxpool_loop(x, p, out, index):
    # the channel loop innermost: contiguous, so that it vectorises
    n_, ho, wo, c = out.shape
    for n in range(n_):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    out[n, i, j, ch] = x[n, i * p, j * p, ch]
                    index[n, i, j, ch] = 0
                for r in range(p):
                    for s in range(p):
                        at = r * p + s
                        for ch in range(c):
                            v = x[n, i * p + r, j * p + s, ch]
                            if v > out[n, i, j, ch]:  # strictly: the first maximum wins
                                out[n, i, j, ch] = v
                                index[n, i, j, ch] = at


def maxpool(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """``p x p`` max pooling (stride ``p``) of a channels-last batch: the maxima, and the
    row-major offset of each window's first maximum (int8)."""
    n, h, w, c = x.shape
    ho, wo = h // p, w // p
    if _use_numba(x):
        out = np.empty((n, ho, wo, c), x.dtype)
        index = np.empty((n, ho, wo, c), np.int8)
        _maxpool_loop(x, p, out, index)
        return out, index
    best, index = None, np.zeros((n, ho, wo, c), np.int8)
    for r in range(p):  # p*p passes over strided views, no copy of the windows
        for s in range(p):
            view = x[:, r : ho * p : p, s : wo * p : p, :]
            if best is None:
                best = view.copy()
                continue
            better = view > best
            np.copyto(best, view, where=better)
            index[better] = r * p + s
    assert best is not None
    return best, index


@_compile
def _unpool_loop(grad, index, p, out):
    n_, ho, wo, c = grad.shape
    zero = grad.dtype.type(0)
    for n in range(n_):
        for i in range(ho):
            for j in range(wo):
                for r in range(p):
                    for s in range(p):
                        at = r * p + s
                        for ch in range(c):
                            hit = index[n, i, j, ch] == at
                            out[n, i * p + r, j * p + s, ch] = grad[n, i, j, ch] if hit else zero


def unpool(grad: np.ndarray, index: np.ndarray, p: int, shape: tuple[int, ...]) -> np.ndarray:
    """The gradient of :func:`maxpool`: each window's gradient to its first maximum."""
    if _use_numba(grad, index):
        out = np.empty(shape, grad.dtype)  # the loop writes every window
        ho, wo = grad.shape[1] * p, grad.shape[2] * p
        out[:, ho:] = 0  # rows and columns past the last whole window
        out[:, :ho, wo:] = 0
        _unpool_loop(grad, index, p, out)
        return out
    out = np.zeros(shape, grad.dtype)
    ho, wo = grad.shape[1], grad.shape[2]
    for r in range(p):
        for s in range(p):
            np.copyto(out[:, r : ho * p : p, s : wo * p : p, :], grad, where=index == r * p + s)
    return out
