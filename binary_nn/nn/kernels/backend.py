"""The kernel backends: one object gives every fused kernel, so a network computes with the
one it was built with (chosen once, never switched through a module global)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import batchnorm, bits, convolution, elementwise, patches, pooling, statistics, updates
from .batchnorm import BatchNormForward
from .jit import contiguous
from .statistics import ArrayStatistics


class KernelBackend:
    """The numpy implementations: several passes over memory with temporaries, any layout.

    Between this and ``NumbaKernels`` only the summation order of reductions differs,
    so results agree to rounding (and bit for bit outside batch norm's sums and the
    statistics). Arrays are float32 or float64, and scalars are cast to the arrays' dtype, so
    a float32 model never computes in float64.
    """

    name = "numpy"
    #: where the backend's arrays live (None: host memory)
    device: Any = None

    def __deepcopy__(self, memo: dict[int, Any]) -> KernelBackend:
        return self  # no state of its own: a copied network computes with the same kernels

    @property
    def xp(self) -> Any:
        """The array namespace of the backend's arrays (array-api-compat's numpy)."""
        import array_api_compat.numpy

        return array_api_compat.numpy

    def asarray(self, host: Any) -> Any:
        """A host (numpy) array as one of the backend's, on its device (numpy: as it is)."""
        return host

    def to_host(self, array: Any) -> np.ndarray:
        """One of the backend's arrays as a host numpy array (numpy: as it is)."""
        return np.asarray(array)

    def dtype(self, dtype: Any) -> Any:
        """The backend's dtype of the numpy dtype ``dtype``."""
        return np.dtype(dtype)

    def may_share_memory(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether ``a`` and ``b`` may be views of the same memory (True when unsure)."""
        return bool(np.may_share_memory(a, b))

    def contiguous(self, array: np.ndarray) -> np.ndarray:
        """``array`` in one C-contiguous block (a copy only when it is not)."""
        return np.ascontiguousarray(array)

    def sum_of_squares(self, values: np.ndarray) -> float:
        """``sum(values^2)`` as a Python float."""
        flat = values.reshape(-1)
        return float(np.vdot(flat, flat))

    def matmul_into(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out[...] = a @ b``, without a temporary where the backend can."""
        return np.matmul(a, b, out=out)

    def tanh(self, values: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``tanh(values)``, in ``values`` itself ``in_place``."""
        return np.tanh(values, out=values if in_place else None)

    def divide(self, values: np.ndarray, divisor: float, in_place: bool = False) -> np.ndarray:
        """``values / divisor``, in ``values`` itself ``in_place``."""
        return np.divide(values, divisor, out=values if in_place else None)

    def summarize(self, values: np.ndarray, threshold: float = np.inf) -> ArrayStatistics:
        """Mean, variance (``mean(v^2) - mean(v)^2``, floored at 0), largest ``|v|`` and the
        fraction of ``|v| > threshold``; the sums in the dtype of ``values``."""
        return statistics.summarize_numpy(values, threshold)

    def sgd_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        lr: float,
        clip: float,
        scratch: np.ndarray,
        summarize_grad: bool = False,
    ) -> ArrayStatistics | None:
        """``value -= lr * grad`` in place, then clipped to ``[-clip, clip]`` when ``clip > 0``;
        with ``summarize_grad``, also ``summarize`` of ``grad`` (``scratch``, shaped like
        ``value``, may hold ``lr * grad``)."""
        return updates.sgd_numpy(value, grad, lr, clip, scratch, summarize_grad)

    def momentum_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        buf: np.ndarray,
        lr: float,
        momentum: float,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        clip: float = 0.0,
    ) -> None:
        """SGD with momentum (``torch.optim.SGD``'s): ``g = grad + weight_decay * value``,
        ``buf = momentum * buf + g``, ``value -= lr * (g + momentum * buf if nesterov else
        buf)``, then clipped to ``[-clip, clip]`` when ``clip > 0``; ``grad`` is not changed."""
        updates.momentum_numpy(value, grad, buf, lr, momentum, weight_decay, nesterov, clip)

    def adam_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        m: np.ndarray,
        v: np.ndarray,
        t: int,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        clip: float = 0.0,
    ) -> None:
        """Adam's step ``t`` (from 1; ``torch.optim.Adam``'s, or AdamW's with ``decoupled``):
        ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, ``value -= lr / (1 - b1^t) *
        m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, with ``g = grad + weight_decay * value``
        (coupled), or ``value *= 1 - lr * weight_decay`` first (decoupled); then clipped."""
        updates.adam_numpy(value, grad, m, v, t, lr, betas, eps, weight_decay, decoupled, clip)

    def bop_update(
        self, value: np.ndarray, grad: np.ndarray, m: np.ndarray, gamma: float, threshold: float
    ) -> int:
        """Bop (Helwegen et al., 2019) on latent weights whose signs are the binary weights:
        ``m = (1 - gamma) m + gamma grad``; where ``|m| > threshold`` and ``m`` has the sign
        of the binary weight, the weight flips (``value = -value``). Returns the flips."""
        return updates.bop_numpy(value, grad, m, gamma, threshold)

    def sign_into(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = +1 where values > 0, else -1`` (0 maps to -1); ``out`` may be ``values``."""
        return elementwise.sign_numpy(values, out)

    def pass_where_below(
        self, grad: np.ndarray, a: np.ndarray, limit: float, in_place: bool = False
    ) -> np.ndarray:
        """``grad`` where ``|a| < limit``, else 0 (a new array, or ``grad`` ``in_place``)."""
        return elementwise.pass_below_numpy(grad, a, limit, in_place)

    def times_one_minus_square(
        self, grad: np.ndarray, t: np.ndarray, in_place: bool = False
    ) -> np.ndarray:
        """``grad * (1 - t^2)``: the tanh derivative from ``t = tanh(a)``."""
        return elementwise.one_minus_square_numpy(grad, t, in_place)

    def scale_shift(self, x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """``x * scale + shift`` per feature (a new array): batch norm in evaluation mode."""
        return batchnorm.scale_shift_numpy(x, scale, shift)

    def batchnorm_train(
        self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
    ) -> BatchNormForward:
        """Training-mode batch norm of ``x`` (batch, features) with the batch's statistics:
        ``out = x_hat * gamma + beta``, ``x_hat``, the batch mean, the biased batch variance
        and ``inv_std = 1 / sqrt(var + eps)``."""
        return batchnorm.train_numpy(x, gamma, beta, eps)

    def batchnorm_backward(
        self,
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
        ``grad`` itself ``in_place``), through the batch mean and variance:
        ``(n * grad - sum(grad) - x_hat * sum(grad * x_hat)) * gamma * inv_std / n``."""
        return batchnorm.backward_numpy(
            grad, x_hat, gamma, inv_std, gamma_grad, beta_grad, need_input_grad, in_place
        )

    def pad_images(self, x: np.ndarray, pad: int) -> np.ndarray:
        """``x`` (N, H, W, C) with ``pad`` zero rows and columns on every side."""
        return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def conv2d(self, padded: np.ndarray, w: np.ndarray, k: int, chunk_bytes: int) -> np.ndarray:
        """The stride-1 ``k x k`` convolution of a zero-padded channels-last batch (N, H + k -
        1, W + k - 1, C) by ``w`` (k*k*C, C_out) in ``im2col``'s row order: (N, H, W,
        C_out), the patches made ``chunk_bytes`` at a time."""
        return convolution.conv2d_numpy(self, padded, w, k, chunk_bytes)

    def conv2d_backward(
        self,
        padded: np.ndarray,
        grad: np.ndarray,
        w: np.ndarray,
        k: int,
        weight_grad: np.ndarray,
        need_input_grad: bool,
        chunk_bytes: int,
    ) -> np.ndarray | None:
        """The gradients of ``conv2d`` for the output gradient ``grad`` (N, H, W, C_out):
        the weights' into ``weight_grad`` (k*k*C, C_out), and the (unpadded) input's, returned
        when ``need_input_grad``."""
        return convolution.conv2d_backward_numpy(
            self, padded, grad, w, k, weight_grad, need_input_grad, chunk_bytes
        )

    def im2col(self, padded: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """The ``k x k`` patches of a zero-padded channels-last batch (N, H + k - 1,
        W + k - 1, C): one row per output position, (N*H*W, k*k*C), in the weights' (row,
        column, channel) order; into ``out`` when given."""
        return patches.im2col_numpy(padded, k, _patch_array(padded, k, out))

    def col2im(self, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Each patch (N, H, W, K, K, C) added back into a zero-padded (N, H + K - 1,
        W + K - 1, C) batch (into ``out``, adding to what it holds): a convolution's input
        gradient from its patches' gradients."""
        return patches.col2im_numpy(cols, _image_array(cols, out))

    def maxpool(self, x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
        """The maxima of ``p x p`` windows (stride ``p``), and the row-major offset of each
        window's first maximum (int8)."""
        return pooling.maxpool_numpy(x, p)

    def unpool(
        self, grad: np.ndarray, index: np.ndarray, p: int, shape: tuple[int, ...]
    ) -> np.ndarray:
        """The gradient of ``maxpool``: each window's gradient to its first maximum."""
        return pooling.unpool_numpy(grad, index, p, shape)


class NumbaKernels(KernelBackend):
    """The numba-compiled loops: one or two passes over memory, C-contiguous arrays only
    (anything else takes the numpy version)."""

    name = "numba"

    def summarize(self, values: np.ndarray, threshold: float = np.inf) -> ArrayStatistics:
        if contiguous(values):
            return statistics.summarize_numba(values, threshold)
        return super().summarize(values, threshold)

    def sgd_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        lr: float,
        clip: float,
        scratch: np.ndarray,
        summarize_grad: bool = False,
    ) -> ArrayStatistics | None:
        if contiguous(value, grad) and grad.size > 0:
            return updates.sgd_numba(value, grad, lr, clip, scratch, summarize_grad)
        return super().sgd_update(value, grad, lr, clip, scratch, summarize_grad)

    def momentum_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        buf: np.ndarray,
        lr: float,
        momentum: float,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        clip: float = 0.0,
    ) -> None:
        args = (value, grad, buf, lr, momentum, weight_decay, nesterov, clip)
        if contiguous(value, grad, buf):
            return updates.momentum_numba(*args)
        return super().momentum_update(*args)

    def adam_update(
        self,
        value: np.ndarray,
        grad: np.ndarray,
        m: np.ndarray,
        v: np.ndarray,
        t: int,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        clip: float = 0.0,
    ) -> None:
        args = (value, grad, m, v, t, lr, betas, eps, weight_decay, decoupled, clip)
        if contiguous(value, grad, m, v):
            return updates.adam_numba(*args)
        return super().adam_update(*args)

    def bop_update(
        self, value: np.ndarray, grad: np.ndarray, m: np.ndarray, gamma: float, threshold: float
    ) -> int:
        if contiguous(value, grad, m):
            return updates.bop_numba(value, grad, m, gamma, threshold)
        return super().bop_update(value, grad, m, gamma, threshold)

    def sign_into(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        if contiguous(values, out):
            return elementwise.sign_numba(values, out)
        return super().sign_into(values, out)

    def pass_where_below(
        self, grad: np.ndarray, a: np.ndarray, limit: float, in_place: bool = False
    ) -> np.ndarray:
        if contiguous(grad, a):
            return elementwise.pass_below_numba(grad, a, limit, in_place)
        return super().pass_where_below(grad, a, limit, in_place)

    def times_one_minus_square(
        self, grad: np.ndarray, t: np.ndarray, in_place: bool = False
    ) -> np.ndarray:
        if contiguous(grad, t):
            return elementwise.one_minus_square_numba(grad, t, in_place)
        return super().times_one_minus_square(grad, t, in_place)

    def scale_shift(self, x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
        if contiguous(x) and x.ndim == 2:
            return batchnorm.scale_shift_numba(x, scale, shift)
        return super().scale_shift(x, scale, shift)

    def batchnorm_train(
        self, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
    ) -> BatchNormForward:
        if contiguous(x):
            return batchnorm.train_numba(x, gamma, beta, eps)
        return super().batchnorm_train(x, gamma, beta, eps)

    def batchnorm_backward(
        self,
        grad: np.ndarray,
        x_hat: np.ndarray,
        gamma: np.ndarray,
        inv_std: np.ndarray,
        gamma_grad: np.ndarray,
        beta_grad: np.ndarray,
        need_input_grad: bool,
        in_place: bool = False,
    ) -> np.ndarray | None:
        args = (grad, x_hat, gamma, inv_std, gamma_grad, beta_grad, need_input_grad, in_place)
        if contiguous(grad, x_hat):
            return batchnorm.backward_numba(*args)
        return super().batchnorm_backward(*args)

    def conv2d(self, padded: np.ndarray, w: np.ndarray, k: int, chunk_bytes: int) -> np.ndarray:
        # +-1 weights on +-1 inputs (a binary convolution after a sign activation): counting
        # bits gives the float product's exact integers, several times faster
        if k % 2 and bits.signs_inside(w[None, None]):
            by_bits = bits.conv2d_signs(padded, w, k)
            if by_bits is not None:
                return by_bits
        return super().conv2d(padded, w, k, chunk_bytes)

    def im2col(self, padded: np.ndarray, k: int, out: np.ndarray | None = None) -> np.ndarray:
        out = _patch_array(padded, k, out)
        if contiguous(padded, out):
            return patches.im2col_numba(padded, k, out)
        return patches.im2col_numpy(padded, k, out)

    def col2im(self, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = _image_array(cols, out)
        if contiguous(cols, out):
            return patches.col2im_numba(cols, out)
        return patches.col2im_numpy(cols, out)

    def maxpool(self, x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
        if contiguous(x):
            return pooling.maxpool_numba(x, p)
        return super().maxpool(x, p)

    def unpool(
        self, grad: np.ndarray, index: np.ndarray, p: int, shape: tuple[int, ...]
    ) -> np.ndarray:
        if contiguous(grad, index):
            return pooling.unpool_numba(grad, index, p, shape)
        return super().unpool(grad, index, p, shape)


def _patch_array(padded: np.ndarray, k: int, out: np.ndarray | None) -> np.ndarray:
    n, hp, wp, c = padded.shape
    rows = n * (hp - k + 1) * (wp - k + 1)
    return np.empty((rows, k * k * c), padded.dtype) if out is None else out


def _image_array(cols: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    n, h, w, k, _, c = cols.shape
    return np.zeros((n, h + k - 1, w + k - 1, c), cols.dtype) if out is None else out
