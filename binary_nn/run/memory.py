"""What a training run needs in memory, estimated before anything is allocated.

The estimate walks a shape-only network (``classifier`` with
``shape_only``), so it covers every layer kind — dense, convolution, pooling, batch norm —
with the same accounting as the cost summary (``binary_nn.learning.cost``):

- per parameter: its value, its gradient, the optimizer's state and scratch, and a quantized
  copy of binary weights;
- per example of a batch: the activations the backward step holds (``held_values``), plus the
  largest block's working arrays (twice its output: the next layer's and the signal);
- the evaluation's chunk (its largest activation, a few arrays of it);
- the information-plane probe: its examples through one block at a time, with the float64
  copy its kernel takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import limits
from ..errors import ConfigError
from ..learning.cost import held_values, largest_activation
from ..nn.layers import WeightLayer
from ..nn.network import Network
from .probes import HSIC_EXAMPLES, eval_chunk

#: arrays per parameter besides its value: the gradient and plain SGD's scratch
PARAMETER_ARRAYS = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, by what takes them."""

    parameters: int
    activations: int
    evaluation: int
    probes: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.activations + max(self.evaluation, self.probes)

    def describe(self) -> str:
        return (
            f"about {self.total / 1e9:.2f} GB (parameters with gradients and optimizer state "
            f"{self.parameters / 1e9:.2f} GB, activations of a batch "
            f"{self.activations / 1e9:.2f} GB, then evaluation {self.evaluation / 1e9:.2f} GB "
            f"or the information plane's probe {self.probes / 1e9:.2f} GB)"
        )


def estimate(
    network: Network, batchsize: int, streaming: bool = False, optimizer_state: int = 0
) -> MemoryEstimate:
    """What training ``network`` (a shape-only one will do) in batches of ``batchsize``
    needs; ``optimizer_state``: the optimizer's state values (Adam: 2 per parameter)."""
    itemsize = network.dtype.itemsize
    values = 0
    for layer in network.layers():
        # binary latent weights have one more copy: the signs the forward computes with
        packed = isinstance(layer, WeightLayer) and layer.quantizer.bits is not None
        for p in layer.parameters():
            copies = 1 + PARAMETER_ARRAYS
            copies += packed and isinstance(layer, WeightLayer) and p is layer.weight
            values += copies * p.size
    values += optimizer_state
    largest = largest_activation(network)
    held = held_values(network, streaming) + 2 * largest
    evaluation = 3 * eval_chunk(network) * largest  # a chunk's input, output and scratch
    # the probe's examples: a block's input and output, and the kernel's float64 centred copy
    probes = HSIC_EXAMPLES * largest * (2 * itemsize + 8)
    return MemoryEstimate(
        values * itemsize, held * batchsize * itemsize, evaluation * itemsize, probes
    )


def check_fits(needed: MemoryEstimate, what: str = "--hidden, --conv or -b/--batchsize") -> None:
    """Refuse, in one sentence, a run this process cannot hold (physical memory, or the
    address-space limit it runs under)."""
    available = limits.available_bytes()
    if available is not None and needed.total > available:
        raise ConfigError(
            f"training needs {needed.describe()} but this process may use "
            f"{limits.describe(available)}; choose a smaller {what}"
        )
