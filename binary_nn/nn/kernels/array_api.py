"""The kernels written once in the Python array API: the same code on torch tensors (CPU or
CUDA), CuPy arrays or ``array_api_strict`` arrays (the proof that no numpy-only call leaks).

``ArrayAPIKernels`` computes through the array namespace it is given (``xp``, from
``array-api-compat``) on one device; ``TorchKernels`` adds what the standard leaves out
for torch (moving arrays between host and device, memory sharing) and torch's own
convolutions. The numpy and numba backends (``backend``) stay the default: they write into
given arrays, which the standard cannot express, and stay bit for bit what they were.

Parameters and buffers start on the host, drawn by the same numpy generators on every backend
(a seed gives the same network everywhere), and ``ArrayAPIKernels.asarray`` moves them;
``ArrayAPIKernels.to_host`` brings arrays back (checkpoints are always host numpy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import KernelBackend
from .batchnorm import BatchNormForward
from .statistics import ArrayStatistics, from_sums

Array = Any  # an array of the backend's namespace


class ArrayAPIKernels(KernelBackend):
    """Every kernel in array-API calls on ``xp``'s arrays, on ``device``.

    Parameters
    ----------
    xp : module
        An array-API namespace (``array_api_compat.array_namespace`` of the arrays, or
        ``array_api_strict``).
    device : optional
        Where new arrays go (the namespace's default when None).
    name : str
        What ``--backend`` calls it.
    """

    def __init__(self, xp: Any, device: Any = None, name: str = "array-api") -> None:
        self._xp = xp
        self.device = device
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._xp.__name__}, device={self.device!r})"

    @property
    def xp(self) -> Any:
        return self._xp

    # moving arrays -------------------------------------------------------------------------

    def asarray(self, host: Any) -> Array:
        return self._xp.asarray(host, device=self.device)

    def to_host(self, array: Any) -> np.ndarray:
        return np.from_dlpack(array)

    def dtype(self, dtype: Any) -> Any:
        return getattr(self._xp, np.dtype(dtype).name)

    def may_share_memory(self, a: Array, b: Array) -> bool:
        return True  # unknown: the caller then makes no array its own

    def contiguous(self, array: Array) -> Array:
        return array

    # reductions and products ---------------------------------------------------------------

    def sum_of_squares(self, values: Array) -> float:
        flat = self._xp.reshape(values, (-1,))
        return float(self._xp.sum(flat * flat))

    def summarize(self, values: Array, threshold: float = math.inf) -> ArrayStatistics:
        xp = self._xp
        flat = xp.reshape(values, (-1,))
        n = flat.shape[0]
        if n == 0:
            return ArrayStatistics(0.0, 0.0, 0.0, 0.0)
        magnitude = xp.abs(flat)
        parts = [xp.sum(flat), xp.sum(flat * flat), xp.max(magnitude)]
        if math.isfinite(threshold):
            parts.append(xp.sum(xp.astype(magnitude > threshold, flat.dtype)))
        sums = self.to_host(xp.stack(parts))  # one transfer, not four
        n_above = float(sums[3]) if len(sums) > 3 else 0.0
        return from_sums(n, float(sums[0]), float(sums[1]), float(sums[2]), n_above)

    def matmul_into(self, a: Array, b: Array, out: Array) -> Array:
        out[...] = a @ b
        return out

    # optimizer updates ---------------------------------------------------------------------

    def _clip(self, value: Array, clip: float) -> None:
        if clip > 0:
            value[...] = self._xp.clip(value, -clip, clip)

    def _descend(self, value: Array, grad: Array, lr: float) -> None:
        """``value -= lr * grad``, in place."""
        value -= grad * lr

    def sgd_update(
        self,
        value: Array,
        grad: Array,
        lr: float,
        clip: float,
        scratch: Array,
        summarize_grad: bool = False,
    ) -> ArrayStatistics | None:
        summary = self.summarize(grad) if summarize_grad else None
        self._descend(value, grad, lr)
        self._clip(value, clip)
        return summary

    def momentum_update(
        self,
        value: Array,
        grad: Array,
        buf: Array,
        lr: float,
        momentum: float,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        clip: float = 0.0,
    ) -> None:
        g = grad + weight_decay * value if weight_decay else grad
        buf *= momentum
        buf += g
        value -= lr * (g + momentum * buf if nesterov else buf)
        self._clip(value, clip)

    def adam_update(
        self,
        value: Array,
        grad: Array,
        m: Array,
        v: Array,
        t: int,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        clip: float = 0.0,
    ) -> None:
        b1, b2 = betas
        g = grad + weight_decay * value if weight_decay and not decoupled else grad
        if decoupled and weight_decay:
            value *= 1.0 - lr * weight_decay
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        root = math.sqrt(1.0 - b2**t)
        value -= (lr / (1.0 - b1**t)) * (m / (self._xp.sqrt(v) / root + eps))
        self._clip(value, clip)

    def bop_update(
        self, value: Array, grad: Array, m: Array, gamma: float, threshold: float
    ) -> int:
        xp = self._xp
        m *= 1.0 - gamma
        m += gamma * grad
        flip = (xp.abs(m) > threshold) & ((m > 0) == (value > 0))
        value[...] = xp.where(flip, -value, value)
        return int(self.to_host(xp.sum(xp.astype(flip, xp.int64))))

    # elementwise ---------------------------------------------------------------------------

    def sign_into(self, values: Array, out: Array) -> Array:
        out[...] = self._xp.astype(values > 0, values.dtype) * 2 - 1
        return out

    def tanh(self, values: Array, in_place: bool = False) -> Array:
        if in_place:
            values[...] = self._xp.tanh(values)
            return values
        return self._xp.tanh(values)

    def divide(self, values: Array, divisor: float, in_place: bool = False) -> Array:
        if in_place:
            values /= divisor
            return values
        return values / divisor

    def pass_where_below(
        self, grad: Array, a: Array, limit: float, in_place: bool = False
    ) -> Array:
        mask = self._xp.astype(self._xp.abs(a) < limit, grad.dtype)
        if in_place:
            grad *= mask
            return grad
        return mask * grad

    def times_one_minus_square(self, grad: Array, t: Array, in_place: bool = False) -> Array:
        factor = 1 - t * t
        if in_place:
            grad *= factor
            return grad
        return factor * grad

    # batch norm ----------------------------------------------------------------------------

    def scale_shift(self, x: Array, scale: Array, shift: Array) -> Array:
        return x * scale + shift

    def batchnorm_train(self, x: Array, gamma: Array, beta: Array, eps: float) -> BatchNormForward:
        xp = self._xp
        mean = xp.mean(x, axis=0)
        x_hat = x - mean
        var = xp.sum(x_hat * x_hat, axis=0) / x.shape[0]
        inv_std = 1 / xp.sqrt(var + eps)
        x_hat *= inv_std
        return x_hat * gamma + beta, x_hat, mean, var, inv_std

    def batchnorm_backward(
        self,
        grad: Array,
        x_hat: Array,
        gamma: Array,
        inv_std: Array,
        gamma_grad: Array,
        beta_grad: Array,
        need_input_grad: bool,
        in_place: bool = False,
    ) -> Array | None:
        xp = self._xp
        n = grad.shape[0]
        beta_grad[...] = xp.sum(grad, axis=0)
        gamma_grad[...] = xp.sum(grad * x_hat, axis=0)
        if not need_input_grad:
            return None
        out = grad if in_place else xp.asarray(grad, copy=True)
        out *= n
        out -= beta_grad
        out -= x_hat * gamma_grad
        out *= gamma * inv_std / n
        return out

    # images --------------------------------------------------------------------------------

    def pad_images(self, x: Array, pad: int) -> Array:
        """``x`` (N, H, W, C) with ``pad`` zero rows and columns on every side."""
        if pad == 0:
            return x
        n, h, w, c = x.shape
        padded = self._xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype, device=self.device)
        padded[:, pad : pad + h, pad : pad + w, :] = x
        return padded

    def im2col(self, padded: Array, k: int, out: Array | None = None) -> Array:
        xp = self._xp
        n, hp, wp, c = padded.shape
        h, w = hp - k + 1, wp - k + 1
        windows = [padded[:, i : i + h, j : j + w, :] for i in range(k) for j in range(k)]
        cols = xp.reshape(xp.stack(windows, axis=3), (n * h * w, k * k * c))
        if out is None:
            return cols
        out[...] = cols
        return out

    def col2im(self, cols: Array, out: Array | None = None) -> Array:
        n, h, w, k, _, c = cols.shape
        if out is None:
            out = self._xp.zeros((n, h + k - 1, w + k - 1, c), dtype=cols.dtype, device=self.device)
        for i in range(k):
            for j in range(k):
                out[:, i : i + h, j : j + w, :] += cols[:, :, :, i, j, :]
        return out

    def conv2d(self, padded: Array, w: Array, k: int, chunk_bytes: int) -> Array:
        n, hp, wp, _ = padded.shape
        h, wd = hp - k + 1, wp - k + 1
        return self._xp.reshape(self.im2col(padded, k) @ w, (n, h, wd, w.shape[1]))

    def conv2d_backward(
        self,
        padded: Array,
        grad: Array,
        w: Array,
        k: int,
        weight_grad: Array,
        need_input_grad: bool,
        chunk_bytes: int,
    ) -> Array | None:
        xp = self._xp
        cols = self.im2col(padded, k)
        rows = xp.reshape(grad, (cols.shape[0], -1))
        weight_grad[...] = xp.matrix_transpose(cols) @ rows
        if not need_input_grad:
            return None
        patch_grads = xp.reshape(rows @ xp.matrix_transpose(w), (*grad.shape[:3], k, k, -1))
        input_grad = self.col2im(patch_grads)
        pad, (h, wd) = k // 2, grad.shape[1:3]
        return input_grad[:, pad : pad + h, pad : pad + wd, :]

    def maxpool(self, x: Array, p: int) -> tuple[Array, Array]:
        xp = self._xp
        n, h, w, c = x.shape
        ho, wo = h // p, w // p
        windows = xp.reshape(x[:, : ho * p, : wo * p, :], (n, ho, p, wo, p, c))
        windows = xp.reshape(xp.permute_dims(windows, (0, 1, 3, 5, 2, 4)), (n, ho, wo, c, p * p))
        return xp.max(windows, axis=4), xp.astype(xp.argmax(windows, axis=4), xp.int8)

    def unpool(self, grad: Array, index: Array, p: int, shape: tuple[int, ...]) -> Array:
        xp = self._xp
        out = xp.zeros(shape, dtype=grad.dtype, device=self.device)
        ho, wo = grad.shape[1], grad.shape[2]
        zero = xp.zeros_like(grad)
        for r in range(p):
            for s in range(p):
                picked = xp.where(index == r * p + s, grad, zero)
                out[:, r : ho * p : p, s : wo * p : p, :] = picked
        return out


class TorchKernels(ArrayAPIKernels):
    """torch tensors on ``device`` (``cpu``, ``cuda``, ``cuda:1``): the array-API kernels, with
    torch's own transfers, memory checks and convolutions (cuDNN on a GPU)."""

    def __init__(self, device: str = "cpu") -> None:
        import array_api_compat.torch as xp
        import torch

        where = torch.device(device)
        if where.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: torch sees no CUDA GPU on this machine")
        if where.type == "cuda" and (where.index or 0) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"--device {device}: this machine has {count} CUDA GPU(s)")
        super().__init__(xp, where, "torch")
        self._torch = torch

    def asarray(self, host: Any) -> Array:
        return self._torch.as_tensor(np.asarray(host), device=self.device)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array.detach().cpu().numpy())

    def may_share_memory(self, a: Array, b: Array) -> bool:
        return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())

    def contiguous(self, array: Array) -> Array:
        return array.contiguous()

    def matmul_into(self, a: Array, b: Array, out: Array) -> Array:
        if out.is_contiguous():
            return self._torch.matmul(a, b, out=out)
        return super().matmul_into(a, b, out)

    def _descend(self, value: Array, grad: Array, lr: float) -> None:
        value.add_(grad, alpha=-lr)  # no temporary for grad * lr

    def _clip(self, value: Array, clip: float) -> None:
        if clip > 0:
            value.clamp_(-clip, clip)

    def conv2d(self, padded: Array, w: Array, k: int, chunk_bytes: int) -> Array:
        f = self._torch.nn.functional
        kernel = self._kernel(w, k, padded.shape[3])
        out = f.conv2d(padded.permute(0, 3, 1, 2), kernel)
        return out.permute(0, 2, 3, 1)

    def conv2d_backward(
        self,
        padded: Array,
        grad: Array,
        w: Array,
        k: int,
        weight_grad: Array,
        need_input_grad: bool,
        chunk_bytes: int,
    ) -> Array | None:
        torch = self._torch
        images, grads = padded.permute(0, 3, 1, 2), grad.permute(0, 3, 1, 2)
        c_in = padded.shape[3]
        kernel_grad = torch.nn.grad.conv2d_weight(images, (w.shape[1], c_in, k, k), grads)
        # (C_out, C_in, K, K) -> (K, K, C_in, C_out) -> (K*K*C_in, C_out)
        weight_grad[...] = kernel_grad.permute(2, 3, 1, 0).reshape(k * k * c_in, -1)
        if not need_input_grad:
            return None
        pad, (h, wd) = k // 2, grad.shape[1:3]
        input_grad = torch.nn.grad.conv2d_input(
            (grad.shape[0], c_in, h, wd), self._kernel(w, k, c_in), grads, padding=pad
        )
        return input_grad.permute(0, 2, 3, 1)

    @staticmethod
    def _kernel(w: Array, k: int, c_in: int) -> Array:
        # (K*K*C_in, C_out) in (row, column, channel) order -> torch's (C_out, C_in, K, K)
        return w.reshape(k, k, c_in, -1).permute(3, 2, 0, 1)


class CuPyKernels(ArrayAPIKernels):
    """CuPy arrays on the GPU ``device`` (``cuda`` or ``cuda:N``): the array-API kernels, with
    CuPy's own transfers."""

    def __init__(self, device: str = "cuda") -> None:
        import array_api_compat.cupy as xp
        import cupy

        kind, _, number = device.partition(":")
        index = int(number or 0)
        if kind != "cuda":
            raise ValueError(f"CuPy computes on a GPU (--device cuda), not on {device}")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError:
            count = 0
        if index >= count:
            raise ValueError(f"--device {device}: CuPy sees {count} CUDA GPU(s) on this machine")
        super().__init__(xp, cupy.cuda.Device(index), "cupy")
        self._cupy = cupy

    def asarray(self, host: Any) -> Array:
        with self.device:
            return self._cupy.asarray(host)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(self._cupy.asnumpy(array))


#: what ``--backend`` takes besides numpy: the kernels of each array library on a device
ARRAY_BACKENDS = ("torch", "cupy", "array-api-strict")


def array_kernels(backend: str, device: str = "cpu") -> ArrayAPIKernels:
    """The kernels of ``backend`` (one of ``ARRAY_BACKENDS``) on ``device``; ImportError
    when the library is not installed."""
    if backend == "torch":
        return TorchKernels(device)
    if backend == "cupy":
        return CuPyKernels(device)
    if backend == "array-api-strict":
        import array_api_strict

        return ArrayAPIKernels(array_api_strict, None, backend)
    raise ValueError(f"no array backend {backend!r}; one of {', '.join(ARRAY_BACKENDS)}")
