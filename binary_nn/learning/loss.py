"""The loss of the study and the coding of its targets.

A loss is an object with a ``value`` (what is logged) and an ``error`` (``dLoss/d output``,
what the learning rules feed back); :meth:`MSELoss.value_and_error` gives both from one
difference, which is what a training step calls.
"""

from __future__ import annotations

import numpy as np

from ..registry import Registry


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype, low: float = -1.0) -> np.ndarray:
    """One-hot rows: 1 at the label, ``low`` (-1 for targets, 0 for DRTP's ``y01``) elsewhere."""
    out = np.full((len(labels), n_classes), low, dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


class MSELoss:
    """``sum((y - t)^2) / y.size``, with the error ``2 (y - t)``: the gradient of the *summed*
    squared error, so that weight gradients are sums over the batch (as published)."""

    name = "mse"

    def value(self, output: np.ndarray, target: np.ndarray) -> float:
        return self.value_and_error(output, target)[0]

    def error(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self.value_and_error(output, target)[1]

    def value_and_error(self, output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        diff = output - target
        value = float(np.vdot(diff, diff)) / diff.size
        diff *= 2
        return value, diff


LOSSES: Registry[MSELoss] = Registry("loss")
LOSSES.add("mse", MSELoss())
