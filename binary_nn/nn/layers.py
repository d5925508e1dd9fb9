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

A layer names its state: ``Layer.named_parameters`` (trained) and
``Layer.named_buffers`` (kept but not trained, such as batch norm's running statistics);
``kind`` is the name checkpoints and summaries use for it (``linear``, ``batchnorm``, ...), and
``Layer.output_shape`` maps an example's input shape to its output shape.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from array_api_compat import array_namespace

from ..errors import ConfigError
from .activations import Activation
from .kernels import Array, KernelBackend, default_kernels
from .quantizers import WeightQuantizer

Shape = tuple[int, ...]


def covered(features: slice | None) -> slice:
    """The slice of features a backward step covers (every one when None)."""
    return slice(None) if features is None else features


def features_of(array: Array, features: slice | None, kernels: KernelBackend) -> Array:
    """The features' part of ``array`` (its last axis), C-contiguous: the compiled kernels
    then take it as they take the whole (the same loops, the same numbers)."""
    return array if features is None else kernels.contiguous(array[..., features])


def refuse_slice_input_grad(layer: Layer, features: slice | None, need_input_grad: bool) -> None:
    """A layer that mixes features cannot give the input gradient of a few of them."""
    if features is not None and need_input_grad:
        raise ValueError(f"a {layer.kind} layer gives no input gradient of a slice of features")


#: what a parameter is, for an optimizer that treats them differently (larq's CaseOptimizer):
#: ``binary``: the latent real weights behind binary (sign) weights; ``weight``: real weights;
#: ``scale`` and ``shift``: batch norm's gamma and beta
ROLES = ("binary", "weight", "scale", "shift")


class Parameter:
    """A trainable array and its gradient; ``role`` (one of ``ROLES``) tells an optimizer
    what it is.

    The gradient array is made when first used, so a network built only to be described
    (``classifier`` with ``shape_only``) holds no memory. ``value``
    is an array of the network's kernel backend (numpy, or torch on a GPU).
    """

    __slots__ = ("_grad", "role", "value")

    def __init__(self, value: Array, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"a parameter's role is one of {ROLES}, got {role!r}")
        self.value = value
        self.role = role
        self._grad: Array | None = None

    @property
    def is_weight(self) -> bool:
        """A weight layer's (latent) weights, binary or real: what weight clipping clips."""
        return self.role in ("binary", "weight")

    @property
    def kind(self) -> str:
        """Release 0.1's name: ``weight`` for weights of either kind, else the role."""
        return "weight" if self.is_weight else self.role

    @property
    def grad(self) -> Array:
        if self._grad is None:
            self._grad = array_namespace(self.value).zeros_like(self.value)
        return self._grad

    @grad.setter
    def grad(self, value: Array) -> None:
        self._grad = value

    @property
    def size(self) -> int:
        """Values in the parameter."""
        return math.prod(self.value.shape)

    def drop_grad(self) -> None:
        """Forget the gradient array (a new one is made, zeros, when next used)."""
        self._grad = None


def weight_parameter(weight: Array, quantizer: WeightQuantizer) -> Parameter:
    """A weight layer's weights, whose role its quantizer decides (binary or real)."""
    return Parameter(weight, "binary" if quantizer.binary else "weight")


class Layer:
    """Base class of the layers; a parameter-free layer only overrides forward and backward.

    What a layer costs is part of what it describes: ``forward_macs`` (multiply-adds per
    example), and what its backward step needs kept from the forward pass: its input
    (``keeps_input``), its output (``keeps_output``) and ``extra_values`` per example;
    ``release`` drops what it kept.
    """

    kind: ClassVar[str] = "layer"
    keeps_input = False
    keeps_output = False
    #: whether the output is a view of the input (no new values)
    aliases_input = False
    _kernels: KernelBackend | None = None

    @property
    def kernels(self) -> KernelBackend:
        """The kernel backend the layer computes with (its network's; see
        ``binary_nn.nn.kernels``)."""
        if self._kernels is None:
            self._kernels = default_kernels()
        return self._kernels

    def use_kernels(self, kernels: KernelBackend) -> None:
        """Compute with ``kernels`` from now on, the layer's state moved to its device."""
        self._kernels = kernels
        for p in self.parameters():
            p.value = kernels.asarray(p.value)
            p.drop_grad()  # made again on the device when used

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        raise NotImplementedError

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        raise NotImplementedError

    def output_shape(self, input_shape: Shape) -> Shape:
        """The shape of one example's output, given one example's input shape."""
        return input_shape

    def named_parameters(self) -> dict[str, Parameter]:
        return {}

    def named_buffers(self) -> dict[str, Array]:
        """State that is kept but not trained."""
        return {}

    def parameters(self) -> list[Parameter]:
        return list(self.named_parameters().values())

    def state_dict(self) -> dict[str, Array]:
        """Every array of the layer's state by name: live references, not copies."""
        state = {name: p.value for name, p in self.named_parameters().items()}
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, Array]) -> None:
        """Copy ``state`` (every name of ``state_dict``, same shapes) into the layer."""
        own = self.state_dict()
        if set(state) != set(own):
            raise ConfigError(f"{self.kind} state needs {sorted(own)}, got {sorted(state)}")
        for name, target in own.items():
            if tuple(np.shape(state[name])) != tuple(target.shape):
                raise ConfigError(
                    f"{self.kind}.{name} has shape {tuple(target.shape)}, "
                    f"got {np.shape(state[name])}"
                )
            target[...] = self.kernels.asarray(state[name])

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

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        if train:
            self._shape = tuple(x.shape)
        return self.kernels.xp.reshape(x, (x.shape[0], -1))

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        refuse_slice_input_grad(self, features, need_input_grad)
        return self.kernels.xp.reshape(grad, self._shape) if need_input_grad else None

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)


class WeightLayer(Layer):
    """A layer with latent weights and the quantizer it computes with (Linear, convolutions).

    Its block, the optimizer's clipping, the size accounting and export reach the weights
    through ``weight``, ``quantizer``, ``fan_in`` and ``effective_weight``.
    """

    weight: Parameter
    quantizer: WeightQuantizer
    #: the matrix that carries the error back to the layer's input, shaped like the weights;
    #: None: the weights the forward used, ``q(W)`` (backpropagation). A learning rule sets it
    #: (feedback alignment's fixed random matrix, sign symmetry's ``sign(W)``): the seam of
    #: the error path, which the layer reads without knowing which rule set it
    error_weight: Array | None = None

    def __init__(self, weight: Array, quantizer: WeightQuantizer | None = None) -> None:
        self.quantizer = quantizer if quantizer is not None else WeightQuantizer()
        self.weight = weight_parameter(weight, self.quantizer)
        self._w: Array | None = None  # the weights the last training forward used

    def backward_weight(self) -> Array:
        """What the input gradient is computed with: ``error_weight``, else ``q(W)``."""
        assert self._w is not None, "backward before a training forward"
        return self._w if self.error_weight is None else self.error_weight

    @property
    def fan_in(self) -> int:
        """Inputs summed into one output (what ``--sn`` divides by)."""
        raise NotImplementedError

    def effective_weight(self) -> Array:
        """The weights the forward computes with, ``q(W)``."""
        return self.quantizer.forward(self.weight.value, self.kernels)

    def named_parameters(self) -> dict[str, Parameter]:
        return {"weight": self.weight}

    def describe(self) -> str | None:
        return "bin" if self.quantizer.binary else None


class Linear(WeightLayer):
    """Bias-free ``x @ q(W)`` with latent weights ``W`` of shape (in, out).

    ``quantizer`` (``WeightQuantizer``) gives ``q``: the forward,
    and the error sent to the layer below, use ``q(W)``; the latent ``W`` receives the gradient
    ``x^T @ delta``, shaped by the quantizer's pseudo-gradient.
    """

    kind = "linear"
    keeps_input = True  # for the weight gradient

    def __init__(self, weight: Array, quantizer: WeightQuantizer | None = None) -> None:
        super().__init__(weight, quantizer)
        self._x: Array | None = None

    @property
    def in_features(self) -> int:
        return int(self.weight.value.shape[0])

    @property
    def out_features(self) -> int:
        return int(self.weight.value.shape[1])

    @property
    def fan_in(self) -> int:
        return self.in_features

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        w = self.effective_weight()
        if train:
            self._x, self._w = x, w
        return x @ w

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._x is not None and self._w is not None, "backward before a training forward"
        refuse_slice_input_grad(self, features, need_input_grad)
        columns = covered(features)
        weight_grad = self.weight.grad[:, columns]
        self.kernels.matmul_into(self._x.T, grad, weight_grad)
        self.quantizer.backward(weight_grad, self.weight.value[:, columns])
        return grad @ self.backward_weight().T if need_input_grad else None

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

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        return self.kernels.divide(x, self.fan_in, in_place=overwrite)

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
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
        self.gamma = Parameter(np.ones(n_features, dtype), "scale")
        self.beta = Parameter(np.zeros(n_features, dtype), "shift")
        self.running_mean: Array = np.zeros(n_features, dtype)
        self.running_var: Array = np.ones(n_features, dtype)
        self.running_initialised = False
        self.eps = eps
        self.momentum = momentum
        self._x_hat: Array | None = None
        self._inv_std: Array | None = None

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        xp, shape = self.kernels.xp, tuple(x.shape)
        x = xp.reshape(x, (-1, shape[-1]))  # (examples x positions, channels): a view
        if not train:  # one affine map per feature: x * scale + shift
            scale = self.gamma.value / xp.sqrt(self.running_var + self.eps)
            shift = self.beta.value - self.running_mean * scale
            return xp.reshape(self.kernels.scale_shift(x, scale, shift), shape)
        out, self._x_hat, mean, var, self._inv_std = self.kernels.batchnorm_train(
            x, self.gamma.value, self.beta.value, self.eps
        )
        self._update_running(mean, var)
        return xp.reshape(out, shape)

    def _update_running(self, mean: Array, var: Array) -> None:
        if not self.running_initialised:
            self.running_mean[...] = mean
            self.running_var[...] = var
            self.running_initialised = True
            return
        m = self.momentum
        self.running_mean *= m
        self.running_mean += (1 - m) * mean
        self.running_var *= m
        self.running_var += (1 - m) * var

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._x_hat is not None and self._inv_std is not None, "backward before forward"
        xp, shape = self.kernels.xp, tuple(grad.shape)
        every = covered(features)
        # exact gradient through the batch mean and variance (each feature's own)
        result = self.kernels.batchnorm_backward(
            xp.reshape(grad, (-1, shape[-1])),
            features_of(self._x_hat, features, self.kernels),
            self.gamma.value[every],
            self._inv_std[every],
            self.gamma.grad[every],
            self.beta.grad[every],
            need_input_grad,
            in_place=overwrite,
        )
        return None if result is None else xp.reshape(result, shape)

    def named_parameters(self) -> dict[str, Parameter]:
        return {"gamma": self.gamma, "beta": self.beta}

    def named_buffers(self) -> dict[str, Array]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def use_kernels(self, kernels: KernelBackend) -> None:
        super().use_kernels(kernels)
        self.running_mean = kernels.asarray(self.running_mean)
        self.running_var = kernels.asarray(self.running_var)

    def load_state_dict(self, state: dict[str, Array]) -> None:
        super().load_state_dict(state)
        self.running_initialised = True

    def describe(self) -> str | None:
        return "bn"

    def extra_values(self, input_shape: Shape) -> int:
        return math.prod(input_shape)  # the normalised input x_hat

    def release(self) -> None:
        self._x_hat = self._inv_std = None


class ActivationLayer(Layer):
    """Applies an ``Activation``.

    A training forward keeps only what the activation's backward reads (its ``needs``), and
    the pre-activation too while ``keep_input`` is set (the per-iteration statistics read it).
    """

    kind = "activation"

    def __init__(self, activation: Activation) -> None:
        self.activation = activation
        self.keep_input = False
        self.input: Array | None = None
        self._output: Array | None = None
        self._ready = False

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        needs = self.activation.needs
        keep = train and (needs == "input" or self.keep_input)
        y = self.activation.forward(x, in_place=overwrite and not keep, kernels=self.kernels)
        if train:
            self.input = x if keep else None
            self._output = y if needs == "output" else None
            self._ready = True
        return y

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        assert self._ready, "backward before a training forward"
        a = None if self.input is None else features_of(self.input, features, self.kernels)
        y = None if self._output is None else features_of(self._output, features, self.kernels)
        return self.activation.backward(grad, a, y, in_place=overwrite, kernels=self.kernels)

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
