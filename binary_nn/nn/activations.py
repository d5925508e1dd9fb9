"""Hidden and output activations, looked up by name (``--hidden-act``, ``--last-act``).

Each activation gives its forward map and the backward step of the behaviour spec
(``docs/behaviour.md``): the sign family are straight-through estimators whose "derivative" is
a surrogate, not the (zero) true derivative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import Registry
from .kernels import NUMPY, Array, KernelBackend
from .quantizers import sign


class Activation:
    """Base class: ``forward(a)`` and ``backward(grad, a, y)`` = ``grad * f'(a)``; with
    ``in_place`` each may compute in the array it is given (``a``, ``grad``); ``kernels`` is
    the layer's kernel backend.

    ``saturation_threshold`` is where a pre-activation counts as saturated in the per-iteration
    statistics (``|a| > threshold``). ``needs`` says which array the backward step reads,
    ``"input"`` (``a``), ``"output"`` (``y``) or None, so that a layer keeps only that one;
    ``binary_output`` is true when every output is -1 or +1.
    """

    name: str = ""
    saturation_threshold: float = np.inf
    needs: str | None = None
    binary_output = False

    def forward(self, a: Array, in_place: bool = False, kernels: KernelBackend = NUMPY) -> Array:
        raise NotImplementedError

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        """``grad`` times the derivative used at pre-activation ``a`` (``y`` is ``forward(a)``);
        only the array ``needs`` names is given, the other may be None. ``in_place`` lets it
        overwrite ``grad``."""
        raise NotImplementedError


class Tanh(Activation):
    name = "tanh"
    saturation_threshold = 2.0
    needs = "output"

    def forward(self, a: Array, in_place: bool = False, kernels: KernelBackend = NUMPY) -> Array:
        return kernels.tanh(a, in_place)

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        return kernels.times_one_minus_square(grad, y, in_place)


class Identity(Activation):
    name = "id"

    def forward(self, a: Array, in_place: bool = False, kernels: KernelBackend = NUMPY) -> Array:
        return a

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        return grad


class Sign(Activation):
    """``sign(a)`` with the plain straight-through estimator (derivative 1)."""

    name = "sign"
    saturation_threshold = 1.0
    binary_output = True

    def forward(self, a: Array, in_place: bool = False, kernels: KernelBackend = NUMPY) -> Array:
        return sign(a, out=a if in_place else None, kernels=kernels)

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        return grad


class SignSat(Sign):
    """``sign(a)``; the gradient passes only where ``|a| < 1`` (saturated STE)."""

    name = "signsat"
    needs = "input"

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        return kernels.pass_where_below(grad, a, 1.0, in_place)


class SignTanh(Sign):
    """``sign(a)``; the gradient is shaped by the tanh derivative ``1 - tanh(a)^2``."""

    name = "signtanh"
    needs = "input"

    def backward(
        self,
        grad: Array,
        a: Any,
        y: Any,
        in_place: bool = False,
        kernels: KernelBackend = NUMPY,
    ) -> Array:
        return kernels.times_one_minus_square(grad, kernels.tanh(a), in_place)


ACTIVATIONS: Registry[Activation] = Registry("activation", "--hidden-act/--last-act")
for _act in (Tanh(), Sign(), SignSat(), SignTanh(), Identity()):
    ACTIVATIONS.add(_act.name, _act)
