"""The feed-forward classifier of the study: hidden blocks and an output block.

A hidden block is ``Linear -> [Scaler] -> [BatchNorm] -> activation``; the output block is
``Linear -> last activation``. Learning rules reach the blocks through :attr:`MLP.hidden_blocks`
and :attr:`MLP.output_block`; they never need to know what is inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import ACTIVATIONS
from .errors import ConfigError
from .layers import ActivationLayer, BatchNorm, Linear, Parameter, Scaler, Sequential
from .quantizers import WEIGHT_STES


class MLP:
    """A bias-free multilayer perceptron with optional binary weights and batch norm.

    Parameters
    ----------
    n_inputs : int
        Size of a flattened input.
    hidden : sequence of int
        Hidden layer sizes, e.g. ``(700, 500, 300, 200)``.
    n_classes : int
        Number of outputs.
    hidden_activation, last_activation : str
        Names in :data:`binary_nn.activations.ACTIVATIONS`.
    batch_norm : bool
        Insert a :class:`BatchNorm` in every hidden block.
    scale : bool
        Insert a :class:`Scaler` (divide by fan-in) after every hidden Linear.
    binarize, binarize_last : bool
        Compute with ``sign(W)`` in the hidden layers / the output layer.
    weight_ste : str
        Name in :data:`binary_nn.quantizers.WEIGHT_STES`.
    init : float
        Weights are drawn from ``U(-init, init)``.
    dtype : numpy dtype
        ``float32`` or ``float64``: the precision of every array and product.
    rng : numpy.random.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int],
        n_classes: int,
        *,
        hidden_activation: str = "tanh",
        last_activation: str = "tanh",
        batch_norm: bool = False,
        scale: bool = False,
        binarize: bool = False,
        binarize_last: bool = False,
        weight_ste: str = "identity",
        init: float = 0.1,
        dtype: type = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {list(hidden)}")
        if init <= 0:
            raise ConfigError(f"init must be > 0, got {init}")
        rng = rng if rng is not None else np.random.default_rng()
        self.dtype = np.dtype(dtype)
        self.hidden_sizes = [int(h) for h in hidden]
        self.n_inputs = int(n_inputs)
        self.n_classes = int(n_classes)
        ste = WEIGHT_STES.get(weight_ste)
        hidden_act = ACTIVATIONS.get(hidden_activation)
        last_act = ACTIVATIONS.get(last_activation)

        def linear(fan_in: int, fan_out: int, binary: bool) -> Linear:
            # drawn in float64 then cast, so both dtypes start from the same weights
            w = rng.uniform(-init, init, size=(fan_in, fan_out)).astype(self.dtype)
            return Linear(w, binarize=binary, weight_ste=ste)

        self.hidden_blocks: list[Sequential] = []
        fan_in = self.n_inputs
        for size in self.hidden_sizes:
            layers = [linear(fan_in, size, binarize)]
            if scale:
                layers.append(Scaler(fan_in))
            if batch_norm:
                layers.append(BatchNorm(size, self.dtype))
            layers.append(ActivationLayer(hidden_act))
            self.hidden_blocks.append(Sequential(layers))
            fan_in = size
        self.output_block = Sequential(
            [linear(fan_in, self.n_classes, binarize_last), ActivationLayer(last_act)]
        )

    @property
    def blocks(self) -> list[Sequential]:
        """Hidden blocks then the output block."""
        return [*self.hidden_blocks, self.output_block]

    @property
    def linears(self) -> list[Linear]:
        return [block.layers[0] for block in self.blocks]

    @property
    def batchnorms(self) -> list[BatchNorm]:
        """The hidden blocks' BatchNorm layers (empty without batch norm)."""
        found = (block.first(BatchNorm) for block in self.hidden_blocks)
        return [bn for bn in found if bn is not None]

    def parameters(self) -> list[Parameter]:
        return [p for block in self.blocks for p in block.parameters()]

    def n_parameters(self) -> int:
        return sum(p.value.size for p in self.parameters())

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        for block in self.blocks:
            x = block.forward(x, train)
        return x

    def hidden_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Each hidden block's output for ``x`` in evaluation mode (for the HSIC plane)."""
        outputs = []
        for block in self.hidden_blocks:
            x = block.forward(x, train=False)
            outputs.append(x)
        return outputs

    def describe(self) -> str:
        """A one-line architecture summary, e.g. ``784-700(bn,tanh)-10(tanh)``."""
        parts = [str(self.n_inputs)]
        for block in self.blocks:
            linear = block.layers[0]
            tags = ["bin" if linear.binarize else None]
            tags += ["sn" if isinstance(layer, Scaler) else None for layer in block.layers]
            tags += ["bn" if isinstance(layer, BatchNorm) else None for layer in block.layers]
            tags.append(block.layers[-1].activation.name)
            parts.append(f"{linear.out_features}({','.join(t for t in tags if t)})")
        return "-".join(parts)

    def memory_bytes(self) -> tuple[int, int]:
        """Bytes of all parameters as stored, and with binarized weights bit-packed (1 bit each)."""
        stored = packed = 0
        binary_ids = {id(lin.weight) for lin in self.linears if lin.binarize}
        for p in self.parameters():
            stored += p.value.nbytes
            packed += -(-p.value.size // 8) if id(p) in binary_ids else p.value.nbytes
        return stored, packed
