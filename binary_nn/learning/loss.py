"""Losses and the coding of their targets.

A loss is an object with a ``value`` (what is logged) and an ``error`` (``dLoss/d output``,
what the learning rules feed back, and what DFA projects); ``Loss.value_and_error``
gives both from one pass, which is what a training step calls. Errors are per example, so
that weight gradients are sums over the batch, as the published code has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from ..nn.kernels import Array
from ..registry import Registry


def one_hot(labels: Array, n_classes: int, dtype: Any, low: float = -1.0) -> Array:
    """One-hot rows: 1 at the label, ``low`` (-1 for targets, 0 for DRTP's ``y01``) elsewhere;
    in the labels' namespace and on their device, ``dtype`` a numpy dtype or the namespace's."""
    xp = array_namespace(labels)
    dtype = getattr(xp, np.dtype(dtype).name) if isinstance(dtype, (np.dtype, type)) else dtype
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    hot = xp.astype(xp.expand_dims(labels, axis=1) == classes, dtype)
    if low == 0:
        return hot
    hot *= 1 - low
    hot += low
    return hot


class Loss:
    """Base class. ``target`` is the ±1 one-hot code of the labels (``one_hot``)."""

    name = ""
    #: the output activation the loss is written for (None: any)
    output_activation: str | None = None

    def value(self, output: Array, target: Array) -> float:
        return self.value_and_error(output, target)[0]

    def error(self, output: Array, target: Array) -> Array:
        return self.value_and_error(output, target)[1]

    def value_and_error(self, output: Array, target: Array) -> tuple[float, Array]:
        raise NotImplementedError


class MSELoss(Loss):
    """``sum((y - t)^2) / y.size``, with the error ``2 (y - t)``: the gradient of the *summed*
    squared error, so that weight gradients are sums over the batch (as published)."""

    name = "mse"

    def value_and_error(self, output: Array, target: Array) -> tuple[float, Array]:
        diff = output - target
        flat = array_namespace(diff).reshape(diff, (-1,))
        value = _sum_of_squares(flat) / flat.shape[0]
        diff *= 2
        return value, diff


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on the output layer's pre-activations (output activation
    ``id``): the value is the mean over examples of ``-log softmax(y)[label]``, the error
    ``softmax(y) - y01`` per example (so weight gradients are sums over the batch, as with
    the published MSE)."""

    name = "cross-entropy"
    output_activation = "id"

    def value_and_error(self, output: Array, target: Array) -> tuple[float, Array]:
        xp = array_namespace(output, target)
        shifted = output - xp.max(output, axis=1, keepdims=True)
        log_norm = xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        log_p = shifted - log_norm
        hot = target > 0
        value = -float(xp.sum(log_p[hot])) / output.shape[0]
        error = xp.exp(log_p)
        error[hot] -= 1
        return value, error


def _sum_of_squares(flat: Any) -> float:
    # numpy's BLAS dot, as release 0.1 summed (the logged loss stays bit for bit the same)
    if isinstance(flat, np.ndarray):
        return float(np.vdot(flat, flat))
    return float(array_namespace(flat).vecdot(flat, flat))


LOSSES: Registry[Loss] = Registry("loss", "--loss")
LOSSES.add("mse", MSELoss())
LOSSES.add("cross-entropy", CrossEntropyLoss(), "ce", "cross_entropy")
