"""Convolution and pooling layers of channels-last images (see ``binary_nn.nn.layers``
for what a layer is and how a backward step takes a slice of features)."""

from __future__ import annotations

import math

from ..errors import ConfigError
from .kernels import Array
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
    ``Linear``. The forward is an im2col product, ``patches (N*H*W, K*K*C_in) @ q(W)``,
    taken a few examples at a time so that each chunk's patches stay in cache; a training
    forward keeps the zero-padded input, and the backward rebuilds each chunk's patches for
    the weight gradient (instead of keeping all of them: K*K times the input's size).
    """

    kind = "conv"
    #: bytes of patches per chunk of examples: about what the cores' caches hold
    chunk_bytes = 2 << 20

    def __init__(self, weight: Array, quantizer: WeightQuantizer | None = None) -> None:
        if weight.ndim != 4 or weight.shape[0] != weight.shape[1] or weight.shape[0] % 2 == 0:
            raise ConfigError(
                f"Conv2d takes (K, K, C_in, C_out) weights, odd K; got {weight.shape}"
            )
        super().__init__(weight, quantizer)
        self._padded: Array | None = None

    @property
    def k(self) -> int:
        return int(self.weight.value.shape[0])

    @property
    def fan_in(self) -> int:
        k, _, c_in, _ = self.weight.value.shape
        return int(k * k * c_in)

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        xp = self.kernels.xp
        w = xp.reshape(self.effective_weight(), (self.fan_in, -1))
        padded = self.kernels.pad_images(x, self.k // 2)
        out = self.kernels.conv2d(padded, w, self.k, self.chunk_bytes)
        if train:
            self._padded, self._w = padded, w
        return out

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._padded is not None and self._w is not None, "backward before forward"
        refuse_slice_input_grad(self, features, need_input_grad)
        channels = covered(features)
        weights = self.weight.grad
        weight_grad = self.kernels.xp.reshape(weights, (self.fan_in, -1))[:, channels]
        back = self.kernels.xp.reshape(self.backward_weight(), (self.fan_in, -1))
        input_grad = self.kernels.conv2d_backward(
            self._padded, grad, back, self.k, weight_grad, need_input_grad, self.chunk_bytes
        )
        self.quantizer.backward(weights[..., channels], self.weight.value[..., channels])
        return input_grad

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
        self._index: Array | None = None
        self._shape: tuple[int, ...] = ()

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        out, index = self.kernels.maxpool(x, self.size)
        if train:
            self._index, self._shape = index, x.shape
        return out

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._index is not None, "backward before forward"
        if not need_input_grad:
            return None
        shape = self._shape if features is None else (*self._shape[:-1], grad.shape[-1])
        index = features_of(self._index, features, self.kernels)
        return self.kernels.unpool(self.kernels.contiguous(grad), index, self.size, shape)

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


class AvgPool2d(Layer):
    """``P x P`` average pooling, stride ``P``, of channels-last images (rows and columns past
    the last whole window are dropped, as ``MaxPool2d`` drops them): a residual unit's
    shortcut where its path max-pools."""

    kind = "avgpool"

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigError(f"an average pool needs a size >= 1, got {size}")
        self.size = size
        self._shape: tuple[int, ...] = ()

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        xp, p = self.kernels.xp, self.size
        n, h, w, c = x.shape
        if train:
            self._shape = tuple(x.shape)
        windows = xp.reshape(x[:, : h // p * p, : w // p * p, :], (n, h // p, p, w // p, p, c))
        return xp.mean(windows, axis=(2, 4))

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        if not need_input_grad:
            return None
        xp, p = self.kernels.xp, self.size
        n, h, w, _ = self._shape
        c = grad.shape[-1]
        # each window's value spread evenly over it; the dropped rows and columns get none
        share = xp.reshape(grad / (p * p), (n, h // p, 1, w // p, 1, c))
        spread = xp.reshape(
            xp.broadcast_to(share, (n, h // p, p, w // p, p, c)), (n, h // p * p, w // p * p, c)
        )
        if (h // p * p, w // p * p) == (h, w):
            return spread
        result = xp.zeros((n, h, w, c), dtype=grad.dtype)
        result[:, : h // p * p, : w // p * p, :] = spread
        return result

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3 or input_shape[0] < self.size or input_shape[1] < self.size:
            raise ConfigError(f"a {self.size}x{self.size} average pool cannot take {input_shape}")
        h, w, c = input_shape
        return (h // self.size, w // self.size, c)

    def describe(self) -> str | None:
        return f"ap{self.size}"


class GlobalAvgPool(Layer):
    """Each channel's mean over the image: (batch, H, W, C) -> (batch, C) (``gap``)."""

    kind = "globalavgpool"

    def __init__(self) -> None:
        self._shape: tuple[int, ...] = ()

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        if train:
            self._shape = tuple(x.shape)
        return self.kernels.xp.mean(x, axis=(1, 2))

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        if not need_input_grad:
            return None
        xp = self.kernels.xp
        n, h, w, _ = self._shape
        c = grad.shape[-1]  # a slice of the features: those channels
        share = xp.reshape(grad / (h * w), (n, 1, 1, c))
        return xp.asarray(xp.broadcast_to(share, (n, h, w, c)), copy=True)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ConfigError(f"global average pooling takes images (H, W, C), got {input_shape}")
        return (input_shape[2],)

    def describe(self) -> str | None:
        return "gap"


class ChannelPad(Layer):
    """Zero channels appended to ``c_in`` up to ``channels``: a residual unit's parameter-free
    shortcut where the channels grow (ResNet's option A; ``--shortcut pad``)."""

    kind = "channelpad"

    def __init__(self, c_in: int, channels: int) -> None:
        if not 1 <= c_in <= channels:
            raise ConfigError(f"padding {c_in} channels to {channels} needs 1 <= {c_in} <= it")
        self.c_in = c_in
        self.channels = channels

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        xp = self.kernels.xp
        zeros = xp.zeros((*x.shape[:-1], self.channels - self.c_in), dtype=x.dtype)
        return xp.concat([x, zeros], axis=-1)

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        refuse_slice_input_grad(self, features, need_input_grad)
        if not need_input_grad:
            return None
        return self.kernels.contiguous(grad[..., : self.c_in])

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3 or input_shape[2] != self.c_in:
            raise ConfigError(f"padding {self.c_in} channels cannot take {input_shape}")
        return (*input_shape[:2], self.channels)

    def describe(self) -> str | None:
        return f"pad{self.channels}"
