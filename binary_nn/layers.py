"""Layers: each is a forward and a backward you can read in one go.

``forward(x, train)`` keeps what ``backward`` needs when ``train`` is true.
``backward(grad, need_input_grad)`` stores the gradients of the layer's parameters in their
``grad`` arrays and returns the gradient with respect to the layer's input, or ``None`` when
``need_input_grad`` is false (the first layer, and every layer under DFA and DRTP, never
needs it, and for a Linear it is the costliest product of the step).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceType

import numpy as np

from .activations import Activation
from .kernels import batchnorm_backward, batchnorm_train, scale_shift
from .quantizers import WeightSTE, sign


class Parameter:
    """A trainable array and its gradient; ``kind`` tells an optimizer what it is."""

    __slots__ = ("grad", "kind", "value")

    def __init__(self, value: np.ndarray, kind: str) -> None:
        self.value = value
        self.grad = np.zeros_like(value)
        self.kind = kind


class Layer:
    """Base class of the layers; a parameter-free layer only overrides forward and backward."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return []


class Linear(Layer):
    """Bias-free ``x @ W`` with ``W`` of shape (in, out).

    With ``binarize`` the forward, and the error sent to the layer below, use ``sign(W)``;
    the latent real ``W`` receives the gradient, shaped by ``weight_ste``.
    """

    def __init__(
        self, weight: np.ndarray, binarize: bool = False, weight_ste: WeightSTE | None = None
    ) -> None:
        self.weight = Parameter(weight, "weight")
        self.binarize = binarize
        self.weight_ste = weight_ste if weight_ste is not None else WeightSTE()
        self._x: np.ndarray | None = None
        self._w: np.ndarray | None = None

    @property
    def in_features(self) -> int:
        return self.weight.value.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.value.shape[1]

    def effective_weight(self) -> np.ndarray:
        """The weights the forward computes with: ``sign(W)`` if binarized, else ``W``."""
        return sign(self.weight.value) if self.binarize else self.weight.value

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        w = self.effective_weight()
        if train:
            self._x, self._w = x, w
        return x @ w

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        np.matmul(self._x.T, grad, out=self.weight.grad)
        if self.binarize:
            self.weight_ste.apply(self.weight.grad, self.weight.value)
        return grad @ self._w.T if need_input_grad else None

    def parameters(self) -> list[Parameter]:
        return [self.weight]


class Scaler(Layer):
    """Divides its input by ``fan_in``, the input size of the Linear before it (``--sn``)."""

    def __init__(self, fan_in: int) -> None:
        self.fan_in = fan_in

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        return x / self.fan_in

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad / self.fan_in if need_input_grad else None


class BatchNorm(Layer):
    """Per-feature batch normalisation with trainable ``gamma`` and ``beta``.

    Training uses the batch's mean and (biased) variance; evaluation the running ones, updated
    as ``running = momentum * running + (1 - momentum) * batch`` after the first batch set them.
    """

    def __init__(
        self, n_features: int, dtype: type = np.float32, eps: float = 1e-3, momentum: float = 0.9
    ) -> None:
        self.gamma = Parameter(np.ones(n_features, dtype), "gamma")
        self.beta = Parameter(np.zeros(n_features, dtype), "beta")
        self.running_mean = np.zeros(n_features, dtype)
        self.running_var = np.ones(n_features, dtype)
        self.running_initialised = False
        self.eps = eps
        self.momentum = momentum
        self._x_hat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        if not train:  # one affine map per feature: x * scale + shift
            scale = self.gamma.value / np.sqrt(self.running_var + self.eps)
            return scale_shift(x, scale, self.beta.value - self.running_mean * scale)
        out, self._x_hat, mean, var, self._inv_std = batchnorm_train(
            x, self.gamma.value, self.beta.value, self.eps
        )
        self._update_running(mean, var)
        return out

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

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        # exact gradient through the batch mean and variance
        return batchnorm_backward(
            grad,
            self._x_hat,
            self.gamma.value,
            self._inv_std,
            self.gamma.grad,
            self.beta.grad,
            need_input_grad,
        )

    def parameters(self) -> list[Parameter]:
        return [self.gamma, self.beta]


class ActivationLayer(Layer):
    """Applies an :class:`~binary_nn.activations.Activation`; keeps its input for the statistics."""

    def __init__(self, activation: Activation) -> None:
        self.activation = activation
        self.input: np.ndarray | None = None
        self._output: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        y = self.activation.forward(x)
        if train:
            self.input, self._output = x, y
        return y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return self.activation.backward(grad, self.input, self._output)


class Sequential(Layer):
    """Layers applied in order; backward asks only the first one for an input gradient."""

    def __init__(self, layers: SequenceType[Layer]) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        for index in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[index].backward(grad, need_input_grad or index > 0)
        return grad

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def first(self, kind: type) -> Layer | None:
        """The first layer of type ``kind``, or None."""
        return next((layer for layer in self.layers if isinstance(layer, kind)), None)
