"""ReActNet's learnable pieces (Liu et al. 2020) for residual units: ``Threshold``, which
with the sign after it makes RSign, ``sign(x - alpha_c)``; and ``RPReLU``,
``PReLU(x - gamma_c; beta_c) + zeta_c``, after a unit's sum. Both have one value per channel
(the last axis) and take a backward step over a slice of channels as the other layers do."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kernels import Array
from .layers import Layer, Parameter, Shape, covered, features_of


def _per_channel(grad: Array, xp: Any) -> Array:
    """The sum of ``grad`` over every axis but the last (the examples and positions)."""
    return xp.sum(xp.reshape(grad, (-1, grad.shape[-1])), axis=0)


class Threshold(Layer):
    """``x - alpha``, a learnable threshold per channel (zero at the start): RSign's, when a
    sign activation follows."""

    kind = "threshold"

    def __init__(self, channels: int, dtype: type | np.dtype = np.float32) -> None:
        self.alpha = Parameter(np.zeros(channels, dtype), "shift")

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        if overwrite:
            x -= self.alpha.value
            return x
        return x - self.alpha.value

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        self.alpha.grad[covered(features)] = -_per_channel(grad, self.kernels.xp)
        return grad if need_input_grad else None

    def named_parameters(self) -> dict[str, Parameter]:
        return {"alpha": self.alpha}

    def describe(self) -> str | None:
        return "rsign"


class RPReLU(Layer):
    """``d = x - gamma``; ``y = d if d > 0 else beta * d``; ``+ zeta``: per channel, with
    ``gamma = zeta = 0`` and ``beta = 0.25`` at the start (PReLU's usual slope)."""

    kind = "rprelu"

    def __init__(self, channels: int, dtype: type | np.dtype = np.float32) -> None:
        self.gamma = Parameter(np.zeros(channels, dtype), "shift")
        self.beta = Parameter(np.full(channels, 0.25, dtype), "scale")
        self.zeta = Parameter(np.zeros(channels, dtype), "shift")
        self._shifted: Array | None = None

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        xp = self.kernels.xp
        shifted = x - self.gamma.value
        if train:
            self._shifted = shifted
        return xp.where(shifted > 0, shifted, self.beta.value * shifted) + self.zeta.value

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._shifted is not None, "backward before a training forward"
        xp, every = self.kernels.xp, covered(features)
        shifted = features_of(self._shifted, features, self.kernels)
        positive = shifted > 0
        self.zeta.grad[every] = _per_channel(grad, xp)
        self.beta.grad[every] = _per_channel(xp.where(positive, 0, grad * shifted), xp)
        input_grad = xp.where(positive, grad, self.beta.value[every] * grad)
        self.gamma.grad[every] = -_per_channel(input_grad, xp)
        return input_grad if need_input_grad else None

    def named_parameters(self) -> dict[str, Parameter]:
        return {"gamma": self.gamma, "beta": self.beta, "zeta": self.zeta}

    def extra_values(self, input_shape: Shape) -> int:
        return math.prod(input_shape)  # x - gamma

    def release(self) -> None:
        self._shifted = None

    def describe(self) -> str | None:
        return "rprelu"
