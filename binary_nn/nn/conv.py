"""Convolution and max-pooling layers of channels-last images (see :mod:`binary_nn.nn.layers`
for what a layer is and how a backward step takes a slice of features)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .layers import (
    Layer,
    Shape,
    WeightLayer,
    covered,
    features_of,
    refuse_slice_input_grad,
)
from .quantizers import WeightQuantizer


class Conv2d(WeightLayer):
    """Bias-free 2-D convolution of channels-last images, stride 1, zero padding ``K // 2``.

    Latent weights ``W`` of shape (K, K, C_in, C_out); the quantizer works as in
    :class:`Linear`. The forward is an im2col product, ``patches (N*H*W, K*K*C_in) @ q(W)``,
    taken a few examples at a time so that each chunk's patches stay in cache; a training
    forward keeps the zero-padded input, and the backward rebuilds each chunk's patches for
    the weight gradient (instead of keeping all of them: K*K times the input's size).
    """

    kind = "conv"
    #: bytes of patches per chunk of examples: about what the cores' caches hold
    chunk_bytes = 2 << 20

    def __init__(self, weight: np.ndarray, quantizer: WeightQuantizer | None = None) -> None:
        if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[0] % 2 == 0:
            raise ConfigError(
                f"Conv2d takes (K, K, C_in, C_out) weights, odd K; got {weight.shape}"
            )
        super().__init__(weight, quantizer)
        self._padded: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.weight.value.shape[0])

    @property
    def fan_in(self) -> int:
        k, _, c_in, _ = self.weight.value.shape
        return int(k * k * c_in)

    def _chunks(self, padded: np.ndarray) -> list[slice]:
        """Consecutive slices of examples whose patches take about ``chunk_bytes``."""
        n, hp, wp, _ = padded.shape
        per_example = (hp - self.k + 1) * (wp - self.k + 1) * self.fan_in * padded.itemsize
        step = max(1, self.chunk_bytes // per_example)
        return [slice(start, min(start + step, n)) for start in range(0, n, step)]

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        w = self.effective_weight().reshape(self.fan_in, -1)
        pad = self.k // 2
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        out = np.empty((*x.shape[:3], w.shape[1]), x.dtype)
        for chunk in self._chunks(padded):
            cols = self.kernels.im2col(padded[chunk], self.k)
            np.matmul(cols, w, out=out[chunk].reshape(len(cols), -1))
        if train:
            self._padded, self._w = padded, w
        return out

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        assert self._padded is not None and self._w is not None, "backward before forward"
        refuse_slice_input_grad(self, features, need_input_grad)
        padded, k = self._padded, self.k
        grad = np.ascontiguousarray(grad)
        channels = covered(features)
        weight_grad = self.weight.grad.reshape(self.fan_in, -1)[:, channels]
        # a contiguous transpose: OpenBLAS multiplies by it 3-4x faster than by the view here
        w_t = np.ascontiguousarray(self._w.T) if need_input_grad else None
        input_grad = np.zeros_like(padded) if need_input_grad else None
        for index, chunk in enumerate(self._chunks(padded)):
            cols = self.kernels.im2col(padded[chunk], k)
            rows = grad[chunk].reshape(len(cols), -1)
            if index == 0:
                np.matmul(cols.T, rows, out=weight_grad)
            else:
                weight_grad += cols.T @ rows
            if input_grad is not None and w_t is not None:
                patch_grads = np.matmul(rows, w_t, out=cols)  # the chunk's patches are done
                self.kernels.col2im(
                    patch_grads.reshape(*grad[chunk].shape[:3], k, k, -1), input_grad[chunk]
                )
        self.quantizer.backward(self.weight.grad[..., channels], self.weight.value[..., channels])
        if input_grad is None:
            return None
        pad, (h, w) = k // 2, grad.shape[1:3]
        return input_grad[:, pad : pad + h, pad : pad + w, :]

    def output_shape(self, input_shape: Shape) -> Shape:
        _, _, c_in, c_out = self.weight.value.shape
        if len(input_shape) != 3 or input_shape[2] != c_in:
            raise ConfigError(f"Conv2d with {c_in} input channels cannot take {input_shape}")
        return (input_shape[0], input_shape[1], int(c_out))

    def forward_macs(self, input_shape: Shape) -> int:
        h, w, _ = input_shape
        return int(h * w * self.fan_in * self.weight.value.shape[3])

    def extra_values(self, input_shape: Shape) -> int:
        h, w, c = input_shape
        return int((h + self.k - 1) * (w + self.k - 1) * c)  # the zero-padded input

    def release(self) -> None:
        self._padded = self._w = None

    def describe(self) -> str | None:
        tag = f"c{self.k}"
        return f"{tag},bin" if self.quantizer.binary else tag


class MaxPool2d(Layer):
    """``P x P`` max pooling, stride ``P``, of channels-last images (rows and columns past the
    last whole window are dropped); the gradient goes to each window's (first) maximum."""

    kind = "maxpool"

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigError(f"a max-pool needs a size >= 1, got {size}")
        self.size = size
        self._index: np.ndarray | None = None
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        out, index = self.kernels.maxpool(x, self.size)
        if train:
            self._index, self._shape = index, x.shape
        return out

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        assert self._index is not None, "backward before forward"
        if not need_input_grad:
            return None
        shape = self._shape if features is None else (*self._shape[:-1], grad.shape[-1])
        grad = np.ascontiguousarray(grad)
        return self.kernels.unpool(grad, features_of(self._index, features), self.size, shape)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3 or input_shape[0] < self.size or input_shape[1] < self.size:
            raise ConfigError(f"a {self.size}x{self.size} max-pool cannot take {input_shape}")
        h, w, c = input_shape
        return (h // self.size, w // self.size, c)

    def extra_values(self, input_shape: Shape) -> int:
        return math.prod(self.output_shape(input_shape))  # each window's argmax

    def release(self) -> None:
        self._index = None

    def describe(self) -> str | None:
        return f"mp{self.size}"
