"""Layers in order (``Path``) and the unit a learning rule addresses in a chain (``Block``).

A ``Path`` applies its layers one after the other; an empty path is the identity (a residual
unit's plain shortcut). A ``Block`` is a path with exactly one weight layer and one activation,
e.g. ``Linear -> [Scaler] -> [BatchNorm] -> activation``, or, in a residual unit, the
pre-activation order ``activation -> Conv2d -> [BatchNorm]`` (Bi-Real Net's: the sign comes
before the binary convolution, so that the convolution reads +-1 while the unit's output stays
real). A block tells the rest of the package what it is made of — its ``weight_layer``, its
``activation``, its ``output_shape`` and its named state — so that nothing outside it indexes
its layers by position.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence

from ..errors import ConfigError
from .kernels import Array, KernelBackend, default_kernels
from .layers import ActivationLayer, Layer, Parameter, Shape, WeightLayer


class Path:
    """Layers applied in order.

    Parameters
    ----------
    layers : sequence of Layer
        In the order they are applied; no two layers with state may share a ``kind`` (their
        ``kind`` names their state). None: the identity.
    input_shape : tuple of int
        The shape of one example reaching the path.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Shape) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(n) for n in input_shape)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        self.output_shape: Shape = shape
        kinds = [layer.kind for layer in self.layers if layer.state_dict()]
        if len(kinds) != len(set(kinds)):
            raise ConfigError(f"a block's layers with state must differ in kind, got {kinds}")
        # a layer returns an input gradient when something below it in the path trains
        self._input_grad_needed = [
            any(lower.parameters() for lower in self.layers[:i]) for i in range(len(self.layers))
        ]

    @property
    def kernels(self) -> KernelBackend:
        """The kernel backend the path's layers compute with."""
        return self.layers[0].kernels if self.layers else default_kernels()

    @property
    def output_size(self) -> int:
        """Values per example at the path's output."""
        return math.prod(self.output_shape)

    def walk(self) -> Iterator[tuple[Layer, Shape]]:
        """Every layer with the shape of one example reaching it."""
        shape = self.input_shape
        for layer in self.layers:
            yield layer, shape
            shape = layer.output_shape(shape)

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        """Every layer in turn. An array made inside the path that no layer keeps (as its
        output) is handed to the next layer to compute in; the path's input only with
        ``overwrite``."""
        owned = overwrite
        for layer in self.layers:
            x = layer.forward(x, train=train, overwrite=owned)
            keeps = train and layer.keeps_output
            owned = not keeps and (owned if layer.aliases_input else True)
        return x

    def backward(
        self,
        grad: Array,
        *,
        need_input_grad: bool,
        overwrite: bool = False,
        features: slice | None = None,
    ) -> Array | None:
        """Backward through every layer; ``grad`` has the path's output shape.

        With ``overwrite`` the caller gives ``grad`` away: the layers may compute in its memory.
        Arrays a layer makes are the path's own and are reused that way in any case.
        ``features`` (a slice of the output's last axis; see ``binary_nn.nn.layers``) takes
        the step for those features only, ``grad`` holding just them, with no input gradient.
        """
        result: Array | None = grad
        owned = overwrite
        for index in range(len(self.layers) - 1, -1, -1):
            if result is None:  # nothing below trains and no input gradient is wanted
                break
            incoming = result
            layer = self.layers[index]
            result = layer.backward(
                incoming,
                need_input_grad=need_input_grad or self._input_grad_needed[index],
                overwrite=owned,
                features=features,
            )
            shares = result is not None and layer.kernels.may_share_memory(result, incoming)
            if result is not None and not shares:
                owned = True  # a new array: no one else holds it
        if result is not None and not need_input_grad:
            return None
        return result

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> dict[str, Parameter]:
        """``{kind}.{name}`` -> parameter, the names ``named_state`` gives them."""
        return {
            f"{layer.kind}.{name}": p
            for layer in self.layers
            for name, p in layer.named_parameters().items()
        }

    def weight_layers(self) -> list[WeightLayer]:
        return [layer for layer in self.layers if isinstance(layer, WeightLayer)]

    def forward_macs(self) -> int:
        """Multiply-adds per example of the path's forward pass (its weight layers')."""
        return sum(layer.forward_macs(shape) for layer, shape in self.walk())

    def release(self) -> None:
        """Drop what the last training forward kept (after the update)."""
        for layer in self.layers:
            layer.release()

    def named_state(self) -> dict[str, Array]:
        """``{kind}.{name}`` -> array (live references) for every layer with state."""
        return {
            f"{layer.kind}.{name}": array
            for layer in self.layers
            for name, array in layer.state_dict().items()
        }

    def load_named_state(self, state: dict[str, Array]) -> None:
        for layer in self.layers:
            prefix = f"{layer.kind}."
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if own or layer.state_dict():
                layer.load_state_dict(own)

    def tags(self) -> list[str]:
        """The layers' short tags (``bin``, ``bn``, ``signsat``, ...)."""
        return [tag for layer in self.layers if (tag := layer.describe())]


class Block(Path):
    """A path with exactly one weight layer and one activation: what a learning rule
    addresses in a chain (see the module docstring).

    Parameters
    ----------
    layers : sequence of Layer
        In the order they are applied; no two layers with state may share a ``kind``.
    input_shape : tuple of int
        The shape of one example reaching the block.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Shape) -> None:
        super().__init__(layers, input_shape)
        weights = self.weight_layers()
        activations = [layer for layer in self.layers if isinstance(layer, ActivationLayer)]
        if len(weights) != 1 or len(activations) != 1:
            raise ConfigError("a block needs exactly one weight layer and one activation")
        self.weight_layer: WeightLayer = weights[0]
        self.activation: ActivationLayer = activations[0]

    @property
    def weights(self) -> WeightLayer:
        """Deprecated alias of ``weight_layer`` (removed in the next release)."""
        warnings.warn(
            "Block.weights is deprecated; use Block.weight_layer", DeprecationWarning, stacklevel=2
        )
        return self.weight_layer

    @property
    def kernels(self) -> KernelBackend:
        """The kernel backend the block's layers compute with."""
        return self.weight_layer.kernels

    def forward(self, x: Array, *, train: bool, overwrite: bool = False) -> Array:
        """Every layer in turn; the block's input is never computed in (see ``Path``)."""
        return super().forward(x, train=train)

    def sections(self) -> list[tuple[str, Path]]:
        """The paths the unit is made of, with the prefix of their state names: one here."""
        return [("", self)]

    def describe(self) -> str:
        """E.g. ``700(bin,bn,signsat)`` or ``32x14x14(bin,signsat)``."""
        return f"{'x'.join(map(str, self.output_shape))}({','.join(self.tags())})"
