"""Weight quantizers: what a weight layer computes with, and how its latent weights learn.

As in larq, a quantizer is one small object that any weight layer takes: its ``forward`` maps
the latent real weights to the weights the layer computes with, its ``backward`` shapes the
latent weights' gradient (the pseudo-gradient of a straight-through estimator), and ``bits`` is
the width one weight needs once deployed (``None``: stored at the array's full precision).

``QUANTIZERS`` looks a quantizer up by name (``real``, ``sign``); the sign quantizer's
pseudo-gradient is one of ``WEIGHT_STES`` (``--weight-ste``).
"""

from __future__ import annotations

from collections.abc import Callable

from array_api_compat import array_namespace

from ..registry import Registry
from .kernels import Array, KernelBackend, default_kernels


def sign(values: Array, out: Array | None = None, kernels: KernelBackend | None = None) -> Array:
    """``+1`` where ``values > 0``, else ``-1`` (so 0 maps to -1), in the dtype of ``values``."""
    kernels = kernels if kernels is not None else default_kernels()
    return kernels.sign_into(values, kernels.xp.empty_like(values) if out is None else out)


class WeightSTE:
    """A pseudo-gradient of sign: ``identity`` leaves the gradient as it is."""

    name = "identity"

    def apply(self, grad: Array, weight: Array) -> None:
        """Modify ``grad`` in place, given the latent ``weight`` it belongs to."""


class SaturatedSTE(WeightSTE):
    """Zero the gradient where the latent weight has saturated (``|W| >= 1``)."""

    name = "sat"

    def apply(self, grad: Array, weight: Array) -> None:
        xp = array_namespace(grad, weight)
        grad[...] = xp.where(xp.abs(weight) >= 1, xp.zeros_like(grad), grad)


class TanhSTE(WeightSTE):
    """Multiply the gradient by ``1 - tanh(W)^2``, the derivative of a tanh relaxation of sign."""

    name = "tanh"

    def apply(self, grad: Array, weight: Array) -> None:
        t = array_namespace(weight).tanh(weight)
        grad *= 1 - t * t


WEIGHT_STES: Registry[WeightSTE] = Registry("weight STE", "--weight-ste")
for _ste in (WeightSTE(), SaturatedSTE(), TanhSTE()):
    WEIGHT_STES.add(_ste.name, _ste)


class WeightQuantizer:
    """Real weights: the layer computes with its latent weights, whose gradient is untouched."""

    name = "real"
    bits: int | None = None

    def forward(self, weight: Array, kernels: KernelBackend | None = None) -> Array:
        """The weights the layer computes with."""
        return weight

    def backward(self, grad: Array, weight: Array) -> None:
        """Shape ``grad``, the gradient computed as if the forward had used ``weight``, in place."""

    @property
    def binary(self) -> bool:
        return self.bits == 1

    def describe(self) -> str:
        return self.name


class SignQuantizer(WeightQuantizer):
    """``sign(W)`` (0 maps to -1), one bit per weight; ``ste`` shapes the latent gradient."""

    name = "sign"
    bits = 1

    def __init__(self, ste: str | WeightSTE = "identity") -> None:
        self.ste = WEIGHT_STES.get(ste) if isinstance(ste, str) else ste

    def forward(self, weight: Array, kernels: KernelBackend | None = None) -> Array:
        return sign(weight, kernels=kernels)

    def backward(self, grad: Array, weight: Array) -> None:
        self.ste.apply(grad, weight)

    def describe(self) -> str:
        return f"sign(ste={self.ste.name})"


QUANTIZERS: Registry[Callable[..., WeightQuantizer]] = Registry("weight quantizer")
QUANTIZERS.add("real", WeightQuantizer, "none")
QUANTIZERS.add("sign", SignQuantizer, "binary")


def weight_quantizer(binary: bool, ste: str = "identity") -> WeightQuantizer:
    """The quantizer of ``--binarize`` (``sign`` with the ``--weight-ste``) or of real weights."""
    return QUANTIZERS.get("sign")(ste) if binary else QUANTIZERS.get("real")()
