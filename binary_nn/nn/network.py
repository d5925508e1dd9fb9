"""Blocks and the network made of them: what learning rules, metrics and checkpoints walk.

A ``Block`` is the unit a learning rule addresses: a few layers ending in the block's
activation, e.g. ``Linear -> [Scaler] -> [BatchNorm] -> activation``. It tells the rest of the
package what it is made of — its ``weight_layer``, its ``activation``,
its ``output_shape`` and its named state — so that nothing outside it indexes its
layers by position. A ``Network`` is hidden blocks then an output block; its state names
are ``{kind}.{block}.{name}`` (``linear.0.weight``, ``batchnorm.1.running_var``, ...).

``classifier`` builds the feed-forward classifier of the published study, with
optional convolutional blocks first.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .activations import ACTIVATIONS
from .conv import Conv2d, MaxPool2d
from .kernels import Array, KernelBackend, default_kernels
from .layers import (
    ActivationLayer,
    BatchNorm,
    Flatten,
    Layer,
    Linear,
    Parameter,
    Scaler,
    Shape,
    WeightLayer,
)
from .quantizers import SignQuantizer, WeightQuantizer, weight_quantizer


class Block:
    """Layers applied in order, with exactly one weight layer and one activation.

    Parameters
    ----------
    layers : sequence of Layer
        In the order they are applied; no two layers with state may share a ``kind``.
    input_shape : tuple of int
        The shape of one example reaching the block.
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Shape) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(n) for n in input_shape)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        self.output_shape: Shape = shape
        weights = [layer for layer in self.layers if isinstance(layer, WeightLayer)]
        activations = [layer for layer in self.layers if isinstance(layer, ActivationLayer)]
        if len(weights) != 1 or len(activations) != 1:
            raise ConfigError("a block needs exactly one weight layer and one activation")
        self.weight_layer: WeightLayer = weights[0]
        self.activation: ActivationLayer = activations[0]
        kinds = [layer.kind for layer in self.layers if layer.state_dict()]
        if len(kinds) != len(set(kinds)):
            raise ConfigError(f"a block's layers with state must differ in kind, got {kinds}")
        # a layer returns an input gradient when something below it in the block trains
        self._input_grad_needed = [
            any(lower.parameters() for lower in self.layers[:i]) for i in range(len(self.layers))
        ]

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

    @property
    def output_size(self) -> int:
        """Values per example at the block's output: the size of a rule's feedback to it."""
        return math.prod(self.output_shape)

    def forward(self, x: Array, *, train: bool) -> Array:
        """Every layer in turn. An array made inside the block that no layer keeps (as its
        output) is handed to the next layer to compute in; the block's input never is."""
        owned = False
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
        """Backward through every layer; ``grad`` has the block's output shape.

        With ``overwrite`` the caller gives ``grad`` away: the layers may compute in its memory.
        Arrays a layer makes are the block's own and are reused that way in any case.
        ``features`` (a slice of the output's last axis; see ``binary_nn.nn.layers``) takes
        the step for those features only, ``grad`` holding just them, with no input gradient.
        """
        result: Array | None = grad
        owned = overwrite
        for index in range(len(self.layers) - 1, -1, -1):
            if result is None:  # nothing below trains and no input gradient is wanted
                break
            incoming = result
            result = self.layers[index].backward(
                incoming,
                need_input_grad=need_input_grad or self._input_grad_needed[index],
                overwrite=owned,
                features=features,
            )
            shares = result is not None and self.kernels.may_share_memory(result, incoming)
            if result is not None and not shares:
                owned = True  # a new array: no one else holds it
        return result

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward_macs(self) -> int:
        """Multiply-adds per example of the block's forward pass (its weight layer's)."""
        total, shape = 0, self.input_shape
        for layer in self.layers:
            total += layer.forward_macs(shape)
            shape = layer.output_shape(shape)
        return total

    def release(self) -> None:
        """Drop what the last training forward kept (after the block's update)."""
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

    def describe(self) -> str:
        """E.g. ``700(bin,bn,signsat)`` or ``32x14x14(bin,signsat)``."""
        tags = [tag for layer in self.layers if (tag := layer.describe())]
        return f"{'x'.join(map(str, self.output_shape))}({','.join(tags)})"


class Network:
    """Hidden blocks then an output block; a classifier of ``n_classes`` outputs.

    Parameters
    ----------
    blocks : sequence of Block
        Each block's input shape is the previous block's output shape.
    dtype : numpy dtype
        ``float32`` or ``float64``: the precision of every array and product.
    kernels : KernelBackend, optional
        The fused kernels every layer computes with (``default_kernels``
        when not given).
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        dtype: type | np.dtype = np.float32,
        kernels: KernelBackend | None = None,
    ) -> None:
        self.blocks = list(blocks)
        if not self.blocks:
            raise ConfigError("a network needs at least an output block")
        for below, above in zip(self.blocks, self.blocks[1:], strict=False):
            if below.output_shape != above.input_shape:
                raise ConfigError(
                    f"a block that takes {above.input_shape} follows one that gives "
                    f"{below.output_shape}"
                )
        if len(self.output_block.output_shape) != 1:
            raise ConfigError("the output block must give one vector per example")
        self.dtype = np.dtype(dtype)
        self.kernels = kernels if kernels is not None else default_kernels()
        for block in self.blocks:
            for layer in block.layers:
                layer.use_kernels(self.kernels)

    @contextlib.contextmanager
    def true_error_path(self) -> Iterator[None]:
        """Within it, every layer sends the error down through the weights its forward used
        (backpropagation), whatever a learning rule set as its error path; restored after
        (the alignment probe's backpropagation twin)."""
        layers = [block.weight_layer for block in self.blocks]
        saved = [layer.error_weight for layer in layers]
        try:
            for layer in layers:
                layer.error_weight = None
            yield
        finally:
            for layer, matrix in zip(layers, saved, strict=True):
                layer.error_weight = matrix

    @property
    def hidden_blocks(self) -> list[Block]:
        return self.blocks[:-1]

    @property
    def output_block(self) -> Block:
        return self.blocks[-1]

    @property
    def input_shape(self) -> Shape:
        return self.blocks[0].input_shape

    @property
    def n_classes(self) -> int:
        return self.output_block.output_size

    def parameters(self) -> list[Parameter]:
        return [p for block in self.blocks for p in block.parameters()]

    def named_parameters(self) -> dict[str, Parameter]:
        """``{kind}.{block}.{name}`` -> parameter, the names ``named_state`` gives them."""
        return {
            f"{layer.kind}.{k}.{name}": p
            for k, block in enumerate(self.blocks)
            for layer in block.layers
            for name, p in layer.named_parameters().items()
        }

    def n_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def forward(self, x: Array, *, train: bool) -> Array:
        for block in self.blocks:
            x = block.forward(x, train=train)
        return x

    def keep_preactivations(self, keep: bool) -> None:
        """Whether training forwards keep every hidden pre-activation (for the statistics)."""
        for block in self.hidden_blocks:
            block.activation.keep_input = keep

    def block_outputs(self, x: Array) -> list[Array]:
        """Every block's output for ``x`` in evaluation mode (the output block's last)."""
        return list(self.each_block_output(x))

    def each_block_output(self, x: Array) -> Iterator[Array]:
        """``block_outputs`` one at a time, so that a consumer holds one block's output
        at a time (the information plane of a wide convnet)."""
        for block in self.blocks:
            x = block.forward(x, train=False)
            yield x

    def named_state(self) -> dict[str, Array]:
        """``{kind}.{block}.{name}`` -> array (live references), e.g. ``linear.0.weight``."""
        state = {}
        for k, block in enumerate(self.blocks):
            for key, array in block.named_state().items():
                kind, name = key.split(".", 1)
                state[f"{kind}.{k}.{name}"] = array
        return state

    def load_named_state(self, state: dict[str, Array]) -> None:
        """Copy ``state`` (the keys and shapes of ``named_state``) into the network."""
        for k, block in enumerate(self.blocks):
            own = {}
            for key, array in state.items():
                kind, index, name = key.split(".", 2)
                if index == str(k):
                    own[f"{kind}.{name}"] = array
            block.load_named_state(own)

    def describe(self) -> str:
        """A one-line architecture summary, e.g. ``784-700(bn,tanh)-10(tanh)``."""
        return "-".join([str(math.prod(self.input_shape)), *(b.describe() for b in self.blocks)])

    def memory_bytes(self) -> tuple[int, int]:
        """Bytes of all parameters as stored, and with quantized weights packed to their bits."""
        stored = packed = 0
        for block in self.blocks:
            bits = block.weight_layer.quantizer.bits
            for p in block.parameters():
                nbytes = p.size * self.dtype.itemsize
                stored += nbytes
                if p is block.weight_layer.weight and bits is not None:
                    packed += -(-p.size * bits // 8)
                else:
                    packed += nbytes
        return stored, packed


ConvSpec = list[tuple[str, int, int]]


def parse_conv(spec: str | Sequence[str]) -> ConvSpec:
    """``"32c5,mp2,64c5,mp2"`` -> ``[("conv", 32, 5), ("pool", 2, 2), ...]``.

    ``{C}c{K}`` is a convolution with C output channels and a K x K kernel (K odd: stride 1,
    zero padding K // 2 keep the image size), ``mp{P}`` a P x P max-pool with stride P.
    """
    tokens = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec)]
    if tokens == [""]:  # no convolution
        return []
    layers: ConvSpec = []
    for token in tokens:
        conv = re.fullmatch(r"([0-9]{1,9})c([0-9]{1,3})", token)  # bounded: finite shapes
        pool = re.fullmatch(r"mp([0-9]{1,4})", token)
        if conv and int(conv.group(1)) >= 1 and int(conv.group(2)) % 2 == 1:
            layers.append(("conv", int(conv.group(1)), int(conv.group(2))))
        elif pool and int(pool.group(1)) >= 1 and layers:
            layers.append(("pool", int(pool.group(1)), int(pool.group(1))))
        else:
            why = (
                "a max-pool needs a convolution before it"
                if pool
                else "an empty token (two commas?)"
                if not token
                else "use {C}c{K} with an odd K (e.g. 32c5) or mp{P} (e.g. mp2)"
            )
            raise ConfigError(f"--conv: bad token {token!r} in {spec!r}; {why}")
    return layers


def classifier(
    input_shape: int | Sequence[int],
    hidden: Sequence[int],
    n_classes: int,
    *,
    conv: str | Sequence[str] = "",
    hidden_activation: str = "tanh",
    last_activation: str = "tanh",
    batch_norm: bool = False,
    scale: bool = False,
    binarize: bool = False,
    binarize_last: bool = False,
    binarize_first: bool = True,
    weight_ste: str = "identity",
    init: float = 0.1,
    dtype: type | np.dtype = np.float32,
    rng: np.random.Generator | None = None,
    shape_only: bool = False,
    kernels: KernelBackend | None = None,
) -> Network:
    """The bias-free multilayer perceptron of the published study, after optional
    convolutional blocks.

    A convolutional block (``conv``, see ``parse_conv``) is ``Conv2d -> [Scaler] ->
    [MaxPool2d] -> [BatchNorm] -> activation``: a max-pool that the spec puts after a
    convolution belongs to its block and comes before batch norm and the activation, since
    the max of signs loses what the max of pre-activations keeps (the usual order of binary
    convnets; max-pooling commutes with the positive scaler). A hidden dense block is
    ``Linear -> [Scaler] -> [BatchNorm] -> activation`` (a ``Flatten`` first when
    examples are not vectors); the output block ``Linear -> last activation``.

    Parameters
    ----------
    input_shape : int or tuple of int
        The shape of one example (an int: vectors of that size; images are (H, W, C)).
    conv : str or sequence of str
        Convolutional layers before the dense ones, e.g. ``"32c5,mp2,64c5,mp2"``.
    hidden : sequence of int
        Hidden layer sizes, e.g. ``(700, 500, 300, 200)``.
    n_classes : int
        Number of outputs.
    hidden_activation, last_activation : str
        Names in ``binary_nn.nn.activations.ACTIVATIONS``.
    batch_norm : bool
        Insert a ``BatchNorm`` in every hidden block.
    scale : bool
        Insert a ``Scaler`` (divide by fan-in) after every hidden Linear.
    binarize_first : bool
        With ``binarize``, whether the first weight layer (the one that reads pixels) is
        binary too (as published); False keeps it real, as BNN recipes do.
    binarize, binarize_last : bool
        Compute with ``sign(W)`` in the hidden layers / the output layer.
    weight_ste : str
        The hidden layers' pseudo-gradient of sign, a name in
        ``binary_nn.nn.quantizers.WEIGHT_STES``; the output layer always takes the plain
        gradient (as the published code does).
    init : float
        Weights are drawn from ``U(-init, init)``.
    dtype : numpy dtype
        ``float32`` or ``float64``.
    rng : numpy.random.Generator
        Source of the initial weights.
    shape_only : bool
        Draw nothing and hold no memory: every weight is a read-only zero-stride view of one
        zero, so that the network tells its shapes, sizes and costs (the memory estimate, the
        cost summary) at any size. It cannot be trained.
    kernels : KernelBackend, optional
        See ``Network``.
    """
    conv_layers = parse_conv(conv)
    if not hidden or any(int(h) < 1 for h in hidden):
        raise ConfigError(f"hidden sizes must be positive integers, got {list(hidden)}")
    if not init > 0:
        raise ConfigError(f"init must be > 0, got {init}")
    rng = rng if rng is not None else np.random.default_rng()
    dtype = np.dtype(dtype)
    shape: Shape = (int(input_shape),) if isinstance(input_shape, int) else tuple(input_shape)
    hidden_act = ACTIVATIONS.get(hidden_activation)
    last_act = ACTIVATIONS.get(last_activation)

    def draw(shape: tuple[int, ...]) -> Array:
        if shape_only:
            return np.broadcast_to(np.zeros((), dtype), shape)
        # drawn in float64 then cast, so both dtypes start from the same weights; a few rows
        # at a time (the same numbers as one draw), so no float64 copy of it all is ever made
        w = np.empty(shape, dtype)
        flat = w.reshape(-1, shape[-1])
        rows = max(1, (1 << 20) // max(shape[-1], 1))
        for start in range(0, len(flat), rows):
            stop = min(start + rows, len(flat))
            flat[start:stop] = rng.uniform(-init, init, size=(stop - start, shape[-1]))
        return w

    def linear(fan_in: int, fan_out: int, quantizer: WeightQuantizer) -> Linear:
        return Linear(draw((fan_in, fan_out)), quantizer)

    blocks: list[Block] = []

    def hidden_quantizer() -> WeightQuantizer:
        first = not blocks
        return weight_quantizer(binarize and (binarize_first or not first), weight_ste)

    for kind, channels, k in conv_layers:
        if kind == "pool":  # joins the block of the convolution before it
            block = blocks[-1]
            parts = list(block.layers)
            at = next(i for i, layer in enumerate(parts) if isinstance(layer, Conv2d))
            position = at + 1 + sum(isinstance(layer, (Scaler, MaxPool2d)) for layer in parts)
            parts.insert(position, MaxPool2d(channels))
            blocks[-1] = Block(parts, block.input_shape)
            shape = blocks[-1].output_shape
            continue
        if len(shape) != 3:
            raise ConfigError(f"--conv needs images (H, W, C), but examples have shape {shape}")
        weights = Conv2d(draw((k, k, shape[2], channels)), hidden_quantizer())
        conv_block: list[Layer] = [weights]
        if scale:
            conv_block.append(Scaler(weights.fan_in))
        if batch_norm:
            conv_block.append(BatchNorm(channels, dtype))
        conv_block.append(ActivationLayer(hidden_act))
        blocks.append(Block(conv_block, shape))
        shape = blocks[-1].output_shape
    for size in [int(h) for h in hidden]:
        layers: list[Layer] = [Flatten()] if len(shape) > 1 else []
        fan_in = math.prod(shape)
        layers.append(linear(fan_in, size, hidden_quantizer()))
        if scale:
            layers.append(Scaler(fan_in))
        if batch_norm:
            layers.append(BatchNorm(size, dtype))
        layers.append(ActivationLayer(hidden_act))
        blocks.append(Block(layers, shape))
        shape = blocks[-1].output_shape
    output_quantizer = SignQuantizer() if binarize_last else WeightQuantizer()
    output = linear(shape[0], int(n_classes), output_quantizer)
    blocks.append(Block([output, ActivationLayer(last_act)], shape))
    return Network(blocks, dtype, kernels)


def mlp(*args: Any, **kwargs: Any) -> Network:
    """Deprecated alias of ``classifier`` (removed in the next release)."""
    warnings.warn("mlp() is deprecated; use classifier()", DeprecationWarning, stacklevel=2)
    return classifier(*args, **kwargs)
