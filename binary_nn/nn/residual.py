"""A residual unit: a block with a shortcut around it, joined by a sum.

``out = after(path(x) + shortcut(x))``. The ``path`` is a ``Block`` (in Bi-Real Net's
order, ``sign -> binary Conv2d -> BatchNorm``, so that the convolution reads +-1 while the
shortcut carries the real-valued input around it); the ``shortcut`` is a ``Path``: empty
(the identity) when the path keeps the shape, else a projection (pooling where the path
pools, a 1x1 convolution where the channels change); ``after`` holds what follows the sum
(ReActNet's RPReLU), empty by default.

A unit is what a learning rule addresses, like a block: backpropagation sends the gradient
at its output down both branches and sums what they return (the fork's rule); a direct
feedback rule (DFA, DRTP) projects its signal to the unit's output — after the sum, where
the unit's value exists — and that signal enters both branches as is (the sum's derivative
is 1 for each), so the path's weights and a projection's learn from it, and nothing goes
below the unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..errors import ConfigError
from .block import Block, Path
from .kernels import Array, KernelBackend
from .layers import ActivationLayer, Layer, Parameter, Shape, WeightLayer


class Residual:
    """``after(path(x) + shortcut(x))`` (see the module docstring).

    Parameters
    ----------
    path : Block
        The unit's weight layer and activation.
    shortcut : Path
        Takes the unit's input to the path's output shape (empty: the identity).
    after : Path, optional
        Applied to the sum (empty when not given).
    """

    def __init__(self, path: Block, shortcut: Path, after: Path | None = None) -> None:
        if shortcut.input_shape != path.input_shape or shortcut.output_shape != path.output_shape:
            raise ConfigError(
                f"a shortcut from {shortcut.input_shape} to {shortcut.output_shape} cannot go "
                f"around a path from {path.input_shape} to {path.output_shape}"
            )
        self.path = path
        self.shortcut = shortcut
        self.after = after if after is not None else Path([], path.output_shape)
        if self.after.input_shape != path.output_shape:
            raise ConfigError(f"what follows a residual sum must take {path.output_shape}")
        self.input_shape: Shape = path.input_shape
        self.output_shape: Shape = self.after.output_shape

    @property
    def weight_layer(self) -> WeightLayer:
        """The path's weight layer (the unit's own; a projection's is the shortcut's)."""
        return self.path.weight_layer

    @property
    def activation(self) -> ActivationLayer:
        return self.path.activation

    @property
    def kernels(self) -> KernelBackend:
        return self.path.kernels

    @property
    def output_size(self) -> int:
        return math.prod(self.output_shape)

    @property
    def layers(self) -> list[Layer]:
        """Every layer: the path's, the shortcut's, then what follows the sum."""
        return [layer for _, section in self.sections() for layer in section.layers]

    def sections(self) -> list[tuple[str, Path]]:
        """The paths the unit is made of, with the prefix of their state names."""
        return [("", self.path), ("shortcut.", self.shortcut), ("after.", self.after)]

    def walk(self) -> Iterator[tuple[Layer, Shape]]:
        for _, section in self.sections():
            yield from section.walk()

    def weight_layers(self) -> list[WeightLayer]:
        return [layer for _, section in self.sections() for layer in section.weight_layers()]

    def forward(self, x: Array, *, train: bool) -> Array:
        # an identity shortcut gives x itself: safe, since a block never computes in its input
        total = self.path.forward(x, train=train) + self.shortcut.forward(x, train=train)
        return self.after.forward(total, train=train, overwrite=True)

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        """Backward through what follows the sum, then both branches; the input gradient is
        the sum of theirs. ``features`` as in ``Path.backward``."""
        at_sum = self.after.backward(
            grad, need_input_grad=True, overwrite=overwrite, features=features
        )
        assert at_sum is not None
        given_away = overwrite or at_sum is not grad
        through_shortcut = self.shortcut.backward(
            at_sum, need_input_grad=need_input_grad, overwrite=False, features=features
        )
        # the path may compute in the signal's memory unless the shortcut returned it as is
        path_may_overwrite = given_away and through_shortcut is not at_sum
        through_path = self.path.backward(
            at_sum,
            need_input_grad=need_input_grad,
            overwrite=path_may_overwrite,
            features=features,
        )
        if not need_input_grad:
            return None
        assert through_path is not None and through_shortcut is not None
        through_path += through_shortcut
        return through_path

    def parameters(self) -> list[Parameter]:
        return [p for _, section in self.sections() for p in section.parameters()]

    def named_parameters(self) -> dict[str, Parameter]:
        """``{kind}.{section}{name}`` -> parameter (the shortcut's as ``conv.shortcut.weight``)."""
        return {
            _prefixed(key, prefix): p
            for prefix, section in self.sections()
            for key, p in section.named_parameters().items()
        }

    def named_state(self) -> dict[str, Array]:
        return {
            _prefixed(key, prefix): array
            for prefix, section in self.sections()
            for key, array in section.named_state().items()
        }

    def load_named_state(self, state: dict[str, Array]) -> None:
        sections = self.sections()
        prefixes = [prefix for prefix, _ in sections if prefix]
        for prefix, section in sections:
            own = {}
            for key, array in state.items():
                kind, name = key.split(".", 1)
                if prefix and name.startswith(prefix):
                    own[f"{kind}.{name[len(prefix) :]}"] = array
                elif not prefix and not any(name.startswith(p) for p in prefixes):
                    own[key] = array
            section.load_named_state(own)

    def forward_macs(self) -> int:
        return sum(section.forward_macs() for _, section in self.sections())

    def release(self) -> None:
        for _, section in self.sections():
            section.release()

    def describe(self) -> str:
        """E.g. ``r32x14x14(signsat,c3,bin,bn)`` or ``r64x7x7(signsat,c3,bin,bn;mp2,c1)``: an
        ``r``, the path's tags, then the shortcut's when it projects."""
        shape = "x".join(map(str, self.output_shape))
        tags = ",".join(self.path.tags())
        if self.shortcut.layers:
            tags += ";" + ",".join(self.shortcut.tags())
        if self.after.layers:
            tags += ";+" + ",".join(self.after.tags())
        return f"r{shape}({tags})"


def _prefixed(key: str, prefix: str) -> str:
    """``conv.weight`` with prefix ``shortcut.`` -> ``conv.shortcut.weight``."""
    kind, name = key.split(".", 1)
    return f"{kind}.{prefix}{name}"


#: what a learning rule addresses: a block of a chain, or a residual unit
Unit = Block | Residual
