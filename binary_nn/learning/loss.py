"""Losses and the coding of their targets.

A loss is an object with a ``value`` (what is logged) and an ``error`` (``dLoss/d output``,
what the learning rules feed back, and what DFA projects); :meth:`Loss.value_and_error`
gives both from one pass, which is what a training step calls. Errors are per example, so
that weight gradients are sums over the batch, as the published code has them.
"""

from __future__ import annotations

import numpy as np

from ..registry import Registry


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype, low: float = -1.0) -> np.ndarray:
    """One-hot rows: 1 at the label, ``low`` (-1 for targets, 0 for DRTP's ``y01``) elsewhere."""
    out = np.full((len(labels), n_classes), low, dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


class Loss:
    """Base class. ``target`` is the ±1 one-hot code of the labels (:func:`one_hot`)."""

    name = ""
    #: the output activation the loss is written for (None: any)
    output_activation: str | None = None

    def value(self, output: np.ndarray, target: np.ndarray) -> float:
        return self.value_and_error(output, target)[0]

    def error(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self.value_and_error(output, target)[1]

    def value_and_error(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError


class MSELoss(Loss):
    """``sum((y - t)^2) / y.size``, with the error ``2 (y - t)``: the gradient of the *summed*
    squared error, so that weight gradients are sums over the batch (as published)."""

    name = "mse"

    def value_and_error(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        diff = output - target
        value = float(np.vdot(diff, diff)) / diff.size
        diff *= 2
        return value, diff


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on the output layer's pre-activations (output activation
    ``id``): the value is the mean over examples of ``-log softmax(y)[label]``, the error
    ``softmax(y) - y01`` per example (so weight gradients are sums over the batch, as with
    the published MSE)."""

    name = "cross-entropy"
    output_activation = "id"

    def value_and_error(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        shifted = output - output.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_norm
        hot = target > 0
        value = -float(log_p[hot].sum()) / len(output)
        error = np.exp(log_p)
        error[hot] -= 1
        return value, error


LOSSES: Registry[Loss] = Registry("loss", "--loss")
LOSSES.add("mse", MSELoss())
LOSSES.add("cross-entropy", CrossEntropyLoss(), "ce", "cross_entropy")
