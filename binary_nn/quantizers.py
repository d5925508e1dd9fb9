"""The sign quantizer and the straight-through estimators (STEs) of binary weights.

A binarized :class:`~binary_nn.layers.Linear` computes with ``sign(W)`` but keeps and updates
the real-valued ("latent") ``W``. The weight gradient ``x^T @ delta`` is computed as if the
forward had used ``W``; a weight STE may then shape it, looked up by name (``--weight-ste``).
"""

from __future__ import annotations

import numpy as np

from .kernels import sign_into
from .registry import Registry


def sign(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``+1`` where ``values > 0``, else ``-1`` (so 0 maps to -1), in the dtype of ``values``."""
    return sign_into(values, np.empty_like(values) if out is None else out)


class WeightSTE:
    """Shapes the latent-weight gradient of a binarized layer; ``identity`` leaves it as it is."""

    name = "identity"

    def apply(self, grad: np.ndarray, weight: np.ndarray) -> None:
        """Modify ``grad`` in place, given the latent ``weight`` it belongs to."""


class SaturatedSTE(WeightSTE):
    """Zero the gradient where the latent weight has saturated (``|W| >= 1``)."""

    name = "sat"

    def apply(self, grad: np.ndarray, weight: np.ndarray) -> None:
        grad[np.abs(weight) >= 1] = 0


class TanhSTE(WeightSTE):
    """Multiply the gradient by ``1 - tanh(W)^2``, the derivative of a tanh relaxation of sign."""

    name = "tanh"

    def apply(self, grad: np.ndarray, weight: np.ndarray) -> None:
        t = np.tanh(weight)
        grad *= 1 - t * t


WEIGHT_STES: Registry[WeightSTE] = Registry("weight STE", "--weight-ste")
for _ste in (WeightSTE(), SaturatedSTE(), TanhSTE()):
    WEIGHT_STES.add(_ste.name, _ste)
