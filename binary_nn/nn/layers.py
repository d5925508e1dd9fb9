"""Layers: each is a forward and a backward you can read in one go, and describes itself.

``forward(x, train=...)`` keeps what ``backward`` needs when ``train`` is true (and only batch
norm behaves differently in the two modes). ``backward(grad, need_input_grad=...)`` stores the
gradients of the layer's parameters in their ``grad`` arrays and returns the gradient with
respect to the layer's input (in ``grad``'s memory when ``overwrite`` allows it and the layer
can), or ``None`` when ``need_input_grad`` is false (the first layer,
and every layer under DFA and DRTP, never needs it, and for a Linear it is the costliest
product of the step). ``forward(x, overwrite=True)`` likewise lets a layer compute in ``x``.

``backward(..., features=slice)`` takes a slice of the last axis of the layer's output (a
Linear's output features, a convolution's channels): ``grad`` holds those features only, the
parameters' gradients are written for them alone, and the input gradient, when one is wanted,
is that of the same features. A weight layer mixes its input features, so it gives no input
gradient then. A block's local step (DFA, DRTP) can so be taken a few features at a time,
without its whole signal in memory at once, with the same numbers (up to how BLAS rounds a
weight gradient's columns, which may depend on the width it is given).

A layer names its state: :meth:`Layer.named_parameters` (trained) and
:meth:`Layer.named_buffers` (kept but not trained, such as batch norm's running statistics);
``kind`` is the name checkpoints and summaries use for it (``linear``, ``batchnorm``, ...), and
:meth:`Layer.output_shape` maps an example's input shape to its output shape.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..errors import ConfigError
from .activations import Activation
from .kernels import (
    batchnorm_backward,
    batchnorm_train,
    col2im,
    im2col,
    maxpool,
    scale_shift,
    unpool,
)
from .quantizers import WeightQuantizer

Shape = tuple[int, ...]


def _all(features: slice | None) -> slice:
    """The slice of features a backward step covers (every one when None)."""
    return slice(None) if features is None else features


def _of(array: np.ndarray, features: slice | None) -> np.ndarray:
    """The features' part of ``array`` (its last axis), C-contiguous: the compiled kernels
    then take it as they take the whole (the same loops, the same numbers)."""
    return array if features is None else np.ascontiguousarray(array[..., features])


def _mixing(layer: Layer, features: slice | None, need_input_grad: bool) -> None:
    """A layer that mixes features cannot give the input gradient of a few of them."""
    if features is not None and need_input_grad:
        raise ValueError(f"a {layer.kind} layer gives no input gradient of a slice of features")


class Parameter:
    """A trainable array and its gradient; ``kind`` tells an optimizer what it is."""

    __slots__ = ("grad", "kind", "value")

    def __init__(self, value: np.ndarray, kind: str) -> None:
        self.value = value
        self.grad = np.zeros_like(value)
        self.kind = kind


class Layer:
    """Base class of the layers; a parameter-free layer only overrides forward and backward.

    What a layer costs is part of what it describes: :meth:`forward_macs` (multiply-adds per
    example), and what its backward step needs kept from the forward pass: its input
    (``keeps_input``), its output (``keeps_output``) and :meth:`extra_values` per example;
    :meth:`release` drops what it kept.
    """

    kind: ClassVar[str] = "layer"
    keeps_input = False
    keeps_output = False
    #: whether the output is a view of the input (no new values)
    aliases_input = False

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        """The shape of one example's output, given one example's input shape."""
        return input_shape

    def named_parameters(self) -> dict[str, Parameter]:
        return {}

    def named_buffers(self) -> dict[str, np.ndarray]:
        """State that is kept but not trained."""
        return {}

    def parameters(self) -> list[Parameter]:
        return list(self.named_parameters().values())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every array of the layer's state by name: live references, not copies."""
        state = {name: p.value for name, p in self.named_parameters().items()}
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` (every name of :meth:`state_dict`, same shapes) into the layer."""
        own = self.state_dict()
        if set(state) != set(own):
            raise ConfigError(f"{self.kind} state needs {sorted(own)}, got {sorted(state)}")
        for name, target in own.items():
            if np.shape(state[name]) != target.shape:
                raise ConfigError(
                    f"{self.kind}.{name} has shape {target.shape}, got {np.shape(state[name])}"
                )
            target[...] = state[name]

    def describe(self) -> str | None:
        """A short tag for the architecture summary, or None."""
        return None

    def forward_macs(self, input_shape: Shape) -> int:
        """Multiply-adds of the forward pass per example (elementwise work is not counted)."""
        return 0

    def extra_values(self, input_shape: Shape) -> int:
        """Values per example kept for the backward step besides the input and output."""
        return 0

    def release(self) -> None:
        """Drop what the last training forward kept for the backward step."""


class Flatten(Layer):
    """Examples of any shape to vectors: (batch, *shape) -> (batch, prod(shape)), a view."""

    kind = "flatten"
    aliases_input = True

    def __init__(self) -> None:
        self._shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        if train:
            self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        _mixing(self, features, need_input_grad)
        return grad.reshape(self._shape) if need_input_grad else None

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)


class WeightLayer(Layer):
    """A layer with latent weights and the quantizer it computes with (Linear, convolutions).

    Its block, the optimizer's clipping, the size accounting and export reach the weights
    through ``weight``, ``quantizer``, ``fan_in`` and :meth:`effective_weight`.
    """

    weight: Parameter
    quantizer: WeightQuantizer

    @property
    def fan_in(self) -> int:
        """Inputs summed into one output (what ``--sn`` divides by)."""
        raise NotImplementedError

    def effective_weight(self) -> np.ndarray:
        """The weights the forward computes with, ``q(W)``."""
        return self.quantizer.forward(self.weight.value)

    def named_parameters(self) -> dict[str, Parameter]:
        return {"weight": self.weight}

    def describe(self) -> str | None:
        return "bin" if self.quantizer.binary else None


class Linear(WeightLayer):
    """Bias-free ``x @ q(W)`` with latent weights ``W`` of shape (in, out).

    ``quantizer`` (:class:`~binary_nn.nn.quantizers.WeightQuantizer`) gives ``q``: the forward,
    and the error sent to the layer below, use ``q(W)``; the latent ``W`` receives the gradient
    ``x^T @ delta``, shaped by the quantizer's pseudo-gradient.
    """

    kind = "linear"
    keeps_input = True  # for the weight gradient

    def __init__(self, weight: np.ndarray, quantizer: WeightQuantizer | None = None) -> None:
        self.weight = Parameter(weight, "weight")
        self.quantizer = quantizer if quantizer is not None else WeightQuantizer()
        self._x: np.ndarray | None = None
        self._w: np.ndarray | None = None

    @property
    def in_features(self) -> int:
        return int(self.weight.value.shape[0])

    @property
    def out_features(self) -> int:
        return int(self.weight.value.shape[1])

    @property
    def fan_in(self) -> int:
        return self.in_features

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        w = self.effective_weight()
        if train:
            self._x, self._w = x, w
        return x @ w

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        assert self._x is not None and self._w is not None, "backward before a training forward"
        _mixing(self, features, need_input_grad)
        columns = _all(features)
        weight_grad = self.weight.grad[:, columns]
        np.matmul(self._x.T, grad, out=weight_grad)
        self.quantizer.backward(weight_grad, self.weight.value[:, columns])
        return grad @ self._w.T if need_input_grad else None

    def output_shape(self, input_shape: Shape) -> Shape:
        if input_shape != (self.in_features,):
            raise ConfigError(f"Linear({self.in_features}, ...) cannot take inputs {input_shape}")
        return (self.out_features,)

    def forward_macs(self, input_shape: Shape) -> int:
        return self.in_features * self.out_features

    def release(self) -> None:
        self._x = self._w = None


class Scaler(Layer):
    """Divides its input by ``fan_in``, the input size of the weight layer before it (``--sn``)."""

    kind = "scaler"

    def __init__(self, fan_in: int) -> None:
        self.fan_in = fan_in

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        return np.divide(x, self.fan_in, out=x if overwrite else None)

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        return grad / self.fan_in if need_input_grad else None

    def describe(self) -> str | None:
        return "sn"


class BatchNorm(Layer):
    """Per-feature batch normalisation with trainable ``gamma`` and ``beta``; the features are
    the last axis (a convolution's channels: statistics over examples and positions).

    Training uses the batch's mean and (biased) variance; evaluation the running ones, updated
    as ``running = momentum * running + (1 - momentum) * batch`` after the first batch set them.
    """

    kind = "batchnorm"

    def __init__(
        self,
        n_features: int,
        dtype: type | np.dtype = np.float32,
        eps: float = 1e-3,
        momentum: float = 0.9,
    ) -> None:
        self.gamma = Parameter(np.ones(n_features, dtype), "gamma")
        self.beta = Parameter(np.zeros(n_features, dtype), "beta")
        self.running_mean: np.ndarray = np.zeros(n_features, dtype)
        self.running_var: np.ndarray = np.ones(n_features, dtype)
        self.running_initialised = False
        self.eps = eps
        self.momentum = momentum
        self._x_hat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (examples x positions, channels): a view
        if not train:  # one affine map per feature: x * scale + shift
            scale = self.gamma.value / np.sqrt(self.running_var + self.eps)
            return scale_shift(x, scale, self.beta.value - self.running_mean * scale).reshape(shape)
        out, self._x_hat, mean, var, self._inv_std = batchnorm_train(
            x, self.gamma.value, self.beta.value, self.eps
        )
        self._update_running(mean, var)
        return out.reshape(shape)

    def _update_running(self, mean: np.ndarray, var: np.ndarray) -> None:
        if not self.running_initialised:
            self.running_mean[:] = mean
            self.running_var[:] = var
            self.running_initialised = True
            return
        m = self.momentum
        self.running_mean *= m
        self.running_mean += (1 - m) * mean
        self.running_var *= m
        self.running_var += (1 - m) * var

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        assert self._x_hat is not None and self._inv_std is not None, "backward before forward"
        shape = grad.shape
        every = _all(features)
        # exact gradient through the batch mean and variance (each feature's own)
        result = batchnorm_backward(
            grad.reshape(-1, shape[-1]),
            _of(self._x_hat, features),
            self.gamma.value[every],
            self._inv_std[every],
            self.gamma.grad[every],
            self.beta.grad[every],
            need_input_grad,
            in_place=overwrite,
        )
        return None if result is None else result.reshape(shape)

    def named_parameters(self) -> dict[str, Parameter]:
        return {"gamma": self.gamma, "beta": self.beta}

    def named_buffers(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        self.running_initialised = True

    def describe(self) -> str | None:
        return "bn"

    def extra_values(self, input_shape: Shape) -> int:
        return math.prod(input_shape)  # the normalised input x_hat

    def release(self) -> None:
        self._x_hat = self._inv_std = None


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
        self.weight = Parameter(weight, "weight")
        self.quantizer = quantizer if quantizer is not None else WeightQuantizer()
        self._padded: np.ndarray | None = None
        self._w: np.ndarray | None = None

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
            cols = im2col(padded[chunk], self.k)
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
        _mixing(self, features, need_input_grad)
        padded, k = self._padded, self.k
        grad = np.ascontiguousarray(grad)
        channels = _all(features)
        weight_grad = self.weight.grad.reshape(self.fan_in, -1)[:, channels]
        # a contiguous transpose: OpenBLAS multiplies by it 3-4x faster than by the view here
        w_t = np.ascontiguousarray(self._w.T) if need_input_grad else None
        input_grad = np.zeros_like(padded) if need_input_grad else None
        for index, chunk in enumerate(self._chunks(padded)):
            cols = im2col(padded[chunk], k)
            rows = grad[chunk].reshape(len(cols), -1)
            if index == 0:
                np.matmul(cols.T, rows, out=weight_grad)
            else:
                weight_grad += cols.T @ rows
            if input_grad is not None and w_t is not None:
                patch_grads = np.matmul(rows, w_t, out=cols)  # the chunk's patches are done
                col2im(patch_grads.reshape(*grad[chunk].shape[:3], k, k, -1), input_grad[chunk])
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
        out, index = maxpool(x, self.size)
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
        return unpool(grad, _of(self._index, features), self.size, shape)

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


class ActivationLayer(Layer):
    """Applies an :class:`~binary_nn.nn.activations.Activation`.

    A training forward keeps only what the activation's backward reads (its ``needs``), and
    the pre-activation too while ``keep_input`` is set (the per-iteration statistics read it).
    """

    kind = "activation"

    def __init__(self, activation: Activation) -> None:
        self.activation = activation
        self.keep_input = False
        self.input: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self._ready = False

    def forward(self, x: np.ndarray, *, train: bool, overwrite: bool = False) -> np.ndarray:
        needs = self.activation.needs
        keep = train and (needs == "input" or self.keep_input)
        y = self.activation.forward(x, in_place=overwrite and not keep)
        if train:
            self.input = x if keep else None
            self._output = y if needs == "output" else None
            self._ready = True
        return y

    def backward(
        self,
        grad: np.ndarray,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> np.ndarray | None:
        assert self._ready, "backward before a training forward"
        a = None if self.input is None else _of(self.input, features)
        y = None if self._output is None else _of(self._output, features)
        return self.activation.backward(grad, a, y, in_place=overwrite)

    @property
    def keeps_input(self) -> bool:  # type: ignore[override]
        return self.activation.needs == "input"

    @property
    def keeps_output(self) -> bool:  # type: ignore[override]
        return self.activation.needs == "output"

    def release(self) -> None:
        self.input = self._output = None
        self._ready = False

    def describe(self) -> str | None:
        return self.activation.name
