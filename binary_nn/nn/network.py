"""The network: units in order, what learning rules, metrics and checkpoints walk.

A unit is what a learning rule addresses: a ``Block`` (a few layers with one weight layer
and one activation, see ``binary_nn.nn.block``) or a ``Residual`` unit (a block with a
shortcut around it, see ``binary_nn.nn.residual``). A ``Network`` is hidden units then an
output block, and owns the one traversal everything walks: ``Network.layers`` (every layer,
a unit's in its order), ``Network.weight_layers``, ``Network.each_block_output`` (forward);
its state names are ``{kind}.{unit}.{name}`` (``linear.0.weight``,
``batchnorm.1.running_var``, ``conv.3.shortcut.weight``, ...).

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
from .block import Block, Path
from .conv import AvgPool2d, ChannelPad, Conv2d, GlobalAvgPool, MaxPool2d
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
from .react import RPReLU, Threshold
from .residual import Residual, Unit

__all__ = ["Block", "Network", "Residual", "Unit", "classifier", "mlp", "parse_conv"]


class Network:
    """Hidden units then an output block; a classifier of ``n_classes`` outputs.

    Parameters
    ----------
    blocks : sequence of Block or Residual
        Each unit's input shape is the previous one's output shape; the last is a ``Block``.
    dtype : numpy dtype
        ``float32`` or ``float64``: the precision of every array and product.
    kernels : KernelBackend, optional
        The fused kernels every layer computes with (``default_kernels``
        when not given).
    """

    def __init__(
        self,
        blocks: Sequence[Unit],
        dtype: type | np.dtype = np.float32,
        kernels: KernelBackend | None = None,
    ) -> None:
        self.blocks: list[Unit] = list(blocks)
        if not self.blocks:
            raise ConfigError("a network needs at least an output block")
        for below, above in zip(self.blocks, self.blocks[1:], strict=False):
            if below.output_shape != above.input_shape:
                raise ConfigError(
                    f"a block that takes {above.input_shape} follows one that gives "
                    f"{below.output_shape}"
                )
        if not isinstance(self.blocks[-1], Block):
            raise ConfigError("the output unit must be a block, not a residual unit")
        if len(self.output_block.output_shape) != 1:
            raise ConfigError("the output block must give one vector per example")
        self.dtype = np.dtype(dtype)
        self.kernels = kernels if kernels is not None else default_kernels()
        for layer in self.layers():
            layer.use_kernels(self.kernels)

    def layers(self) -> list[Layer]:
        """Every layer, unit by unit (a residual unit's path, shortcut, then what follows)."""
        return [layer for unit in self.blocks for layer in unit.layers]

    def weight_layers(self) -> list[WeightLayer]:
        """Every weight layer, in the order of ``layers``."""
        return [layer for unit in self.blocks for layer in unit.weight_layers()]

    def error_layers(self) -> list[WeightLayer]:
        """The weight layers that send the error down to a unit below (all but the first
        unit's): those whose error path a rule may set (``WeightLayer.error_weight``)."""
        return [layer for unit in self.blocks[1:] for layer in unit.weight_layers()]

    @property
    def is_chain(self) -> bool:
        """Whether every unit is a plain block (no shortcut): what export handles today."""
        return all(isinstance(unit, Block) for unit in self.blocks)

    @contextlib.contextmanager
    def true_error_path(self) -> Iterator[None]:
        """Within it, every layer sends the error down through the weights its forward used
        (backpropagation), whatever a learning rule set as its error path; restored after
        (the alignment probe's backpropagation twin)."""
        layers = self.weight_layers()
        saved = [layer.error_weight for layer in layers]
        try:
            for layer in layers:
                layer.error_weight = None
            yield
        finally:
            for layer, matrix in zip(layers, saved, strict=True):
                layer.error_weight = matrix

    @property
    def hidden_blocks(self) -> list[Unit]:
        return self.blocks[:-1]

    @property
    def output_block(self) -> Block:
        output = self.blocks[-1]
        assert isinstance(output, Block)
        return output

    @property
    def input_shape(self) -> Shape:
        return self.blocks[0].input_shape

    @property
    def n_classes(self) -> int:
        return self.output_block.output_size

    def parameters(self) -> list[Parameter]:
        return [p for block in self.blocks for p in block.parameters()]

    def named_parameters(self) -> dict[str, Parameter]:
        """``{kind}.{unit}.{name}`` -> parameter, the names ``named_state`` gives them."""
        return {
            _indexed(key, k): p
            for k, block in enumerate(self.blocks)
            for key, p in block.named_parameters().items()
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

    def each_block_output(self, x: Array, *, train: bool = False) -> Iterator[Array]:
        """Every unit's output for ``x``, one at a time (so that a consumer holds one unit's
        output at a time: the information plane of a wide convnet); in evaluation mode
        unless ``train`` (then the network's training forward, keeping what backward needs)."""
        for block in self.blocks:
            x = block.forward(x, train=train)
            yield x

    def named_state(self) -> dict[str, Array]:
        """``{kind}.{unit}.{name}`` -> array (live references), e.g. ``linear.0.weight``."""
        return {
            _indexed(key, k): array
            for k, block in enumerate(self.blocks)
            for key, array in block.named_state().items()
        }

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
        for layer in self.layers():
            bits = layer.quantizer.bits if isinstance(layer, WeightLayer) else None
            for p in layer.parameters():
                nbytes = p.size * self.dtype.itemsize
                stored += nbytes
                is_weight = isinstance(layer, WeightLayer) and p is layer.weight
                packed += -(-p.size * bits // 8) if is_weight and bits is not None else nbytes
        return stored, packed


def _indexed(key: str, index: int) -> str:
    """A unit's ``conv.weight`` as unit ``index``'s: ``conv.{index}.weight``."""
    kind, name = key.split(".", 1)
    return f"{kind}.{index}.{name}"


ConvSpec = list[tuple[str, int, int]]
#: a residual unit's shortcut where the channels grow (``--shortcut``)
SHORTCUTS = ("conv", "pad")


def parse_conv(spec: str | Sequence[str]) -> ConvSpec:
    """``"32c5,mp2,64c5,mp2"`` -> ``[("conv", 32, 5), ("pool", 2, 2), ...]``.

    ``{C}c{K}`` is a convolution with C output channels and a K x K kernel (K odd: stride 1,
    zero padding K // 2 keep the image size), ``mp{P}`` a P x P max-pool with stride P,
    ``r{C}c{K}`` a residual unit (``("residual", C, K)``: a K x K convolution with a shortcut
    around it, see ``classifier``), ``gap`` global average pooling (``("gap", 0, 0)``, last).
    """
    tokens = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec)]
    if tokens == [""]:  # no convolution
        return []
    layers: ConvSpec = []
    for token in tokens:
        conv = re.fullmatch(r"(r?)([0-9]{1,9})c([0-9]{1,3})", token)  # bounded: finite shapes
        pool = re.fullmatch(r"mp([0-9]{1,4})", token)
        ended = bool(layers) and layers[-1][0] == "gap"
        if ended:
            why = "gap (global average pooling) comes last"
        elif conv and conv.group(1) and not layers:
            why = "a residual unit needs a convolution before it (a stem, e.g. 32c3,r32c3)"
        elif conv and int(conv.group(2)) >= 1 and int(conv.group(3)) % 2 == 1:
            kind = "residual" if conv.group(1) else "conv"
            layers.append((kind, int(conv.group(2)), int(conv.group(3))))
            continue
        elif pool and int(pool.group(1)) >= 1 and layers:
            layers.append(("pool", int(pool.group(1)), int(pool.group(1))))
            continue
        elif token == "gap" and layers:
            layers.append(("gap", 0, 0))
            continue
        elif pool or token == "gap":
            why = f"{'a max-pool' if pool else 'gap'} needs a convolution before it"
        elif not token:
            why = "an empty token (two commas?)"
        else:
            why = (
                "use {C}c{K} with an odd K (e.g. 32c5), r{C}c{K} (a residual unit), mp{P} "
                "(e.g. mp2) or gap"
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
    rsign: bool = False,
    rprelu: bool = False,
    shortcut: str = "conv",
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
    examples are not vectors, a ``GlobalAvgPool`` after ``gap``); the output block
    ``Linear -> last activation`` (``hidden`` may be empty after convolutions).

    A residual unit ``r{C}c{K}`` (a ``Residual``) is Bi-Real Net's: a pre-activation path
    ``activation -> Conv2d -> [Scaler] -> [MaxPool2d] -> [BatchNorm]``, so that a binary
    convolution reads the signs of the unit's real-valued input, plus a shortcut of that
    input: the identity, or where the path changes the shape, an average pool of the path's
    windows and, where the channels change, a real-valued 1x1 convolution (with batch norm
    under ``batch_norm``). The sum is the unit's output, real-valued. A residual unit needs a
    convolution before it (the stem, which reads the pixels).

    Parameters
    ----------
    input_shape : int or tuple of int
        The shape of one example (an int: vectors of that size; images are (H, W, C)).
    conv : str or sequence of str
        Convolutional layers before the dense ones, e.g. ``"32c5,mp2,64c5,mp2"`` or
        ``"32c3,r32c3,r32c3,mp2,r64c3,r64c3,gap"`` (see ``parse_conv``).
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
    shortcut : str
        A residual unit's shortcut where the channels grow: ``conv``, a real-valued 1x1
        convolution (Bi-Real Net's), or ``pad``, zero channels appended (parameter-free).
    rsign, rprelu : bool
        ReActNet's pieces in every residual unit (``binary_nn.nn.react``): a learnable
        threshold per channel before its activation (RSign with a sign), and RPReLU after its
        sum.
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
    conv_spec = parse_conv(conv)
    if shortcut not in SHORTCUTS:
        raise ConfigError(f"--shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    if any(int(h) < 1 for h in hidden):
        raise ConfigError(f"hidden sizes must be positive integers, got {list(hidden)}")
    if not hidden and not conv_spec:
        raise ConfigError("--hidden may be empty only after --conv (give hidden layer sizes)")
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

    blocks: list[Unit] = []

    def hidden_quantizer() -> WeightQuantizer:
        first = not blocks
        return weight_quantizer(binarize and (binarize_first or not first), weight_ste)

    def conv_layers(in_shape: Shape, channels: int, k: int, pre_activation: bool) -> list[Layer]:
        weights = Conv2d(draw((k, k, in_shape[2], channels)), hidden_quantizer())
        layers: list[Layer] = [weights]
        if scale:
            layers.append(Scaler(weights.fan_in))
        if batch_norm:
            layers.append(BatchNorm(channels, dtype))
        activation = ActivationLayer(hidden_act)
        return [activation, *layers] if pre_activation else [*layers, activation]

    def projection(in_shape: Shape, channels: int) -> list[Layer]:
        """The shortcut of a unit whose channels change: a real-valued 1x1 convolution, or
        zero channels appended."""
        if in_shape[2] == channels:
            return []
        if shortcut == "pad":
            if channels < in_shape[2]:
                raise ConfigError(
                    f"--shortcut pad cannot take a unit whose channels shrink ({in_shape[2]} to "
                    f"{channels}): use --shortcut conv"
                )
            return [ChannelPad(in_shape[2], channels)]
        layers: list[Layer] = [Conv2d(draw((1, 1, in_shape[2], channels)), WeightQuantizer())]
        return [*layers, BatchNorm(channels, dtype)] if batch_norm else layers

    global_pool = False
    for kind, channels, k in conv_spec:
        if kind == "gap":  # the first dense block averages the images instead of flattening
            global_pool = True
        elif kind == "pool":  # joins the unit of the convolution before it
            blocks[-1] = _pooled(blocks[-1], channels)
        elif len(shape) != 3:
            raise ConfigError(f"--conv needs images (H, W, C), but examples have shape {shape}")
        elif kind == "conv":
            blocks.append(Block(conv_layers(shape, channels, k, pre_activation=False), shape))
        else:
            inner = conv_layers(shape, channels, k, pre_activation=True)
            threshold: list[Layer] = [Threshold(shape[2], dtype)] if rsign else []
            path = Block([*threshold, *inner], shape)
            after = [RPReLU(channels, dtype)] if rprelu else []
            around = Path(projection(shape, channels), shape)
            blocks.append(Residual(path, around, Path(after, path.output_shape)))
        shape = blocks[-1].output_shape if blocks else shape

    def to_vectors(shape: Shape) -> list[Layer]:
        if len(shape) == 1:
            return []
        return [GlobalAvgPool() if global_pool else Flatten()]

    for size in [int(h) for h in hidden]:
        layers: list[Layer] = to_vectors(shape)
        fan_in = math.prod(layers[0].output_shape(shape) if layers else shape)
        layers.append(linear(fan_in, size, hidden_quantizer()))
        if scale:
            layers.append(Scaler(fan_in))
        if batch_norm:
            layers.append(BatchNorm(size, dtype))
        layers.append(ActivationLayer(hidden_act))
        blocks.append(Block(layers, shape))
        shape = blocks[-1].output_shape
    output_quantizer = SignQuantizer() if binarize_last else WeightQuantizer()
    flat = to_vectors(shape)
    fan_in = math.prod(flat[0].output_shape(shape) if flat else shape)
    output = linear(fan_in, int(n_classes), output_quantizer)
    blocks.append(Block([*flat, output, ActivationLayer(last_act)], shape))
    return Network(blocks, dtype, kernels)


def _pooled(unit: Unit, size: int) -> Unit:
    """``unit`` with a ``size`` x ``size`` max-pool after its convolution (and its scaler),
    before batch norm and the activation; a residual unit's shortcut averages the same
    windows (Bi-Real Net's downsampling shortcut), before its projection if it has one."""
    if isinstance(unit, Residual):
        path = _pooled(unit.path, size)
        assert isinstance(path, Block)
        shortcut = Path([AvgPool2d(size), *unit.shortcut.layers], unit.input_shape)
        return Residual(path, shortcut, Path(unit.after.layers, path.output_shape))
    parts = list(unit.layers)
    at = next(i for i, layer in enumerate(parts) if isinstance(layer, Conv2d))
    position = at + 1 + sum(isinstance(layer, (Scaler, MaxPool2d)) for layer in parts[at:])
    parts.insert(position, MaxPool2d(size))
    return Block(parts, unit.input_shape)


def mlp(*args: Any, **kwargs: Any) -> Network:
    """Deprecated alias of ``classifier`` (removed in the next release)."""
    warnings.warn("mlp() is deprecated; use classifier()", DeprecationWarning, stacklevel=2)
    return classifier(*args, **kwargs)
