"""One training step, the same for the trainer, the benchmarks and the tests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from ..nn.kernels import Array, ArrayStatistics
from ..nn.layers import Parameter
from ..nn.network import Network
from ..nn.residual import Unit
from .cost import block_held_values
from .loss import Loss, one_hot
from .optim import Optimizer
from .rules import DirectFeedbackRule, LearningRule

Summaries = Mapping[Parameter, ArrayStatistics] | None


class Statistics(Protocol):
    """Per-iteration statistics (see ``binary_nn.run.metrics.BatchStatistics``): of the
    whole network after its update, or of one block right after its own."""

    def __call__(self, network: Network, summaries: Summaries) -> dict[str, float]: ...

    def of_block(
        self, k: int, block: Unit, summaries: Summaries, hidden: bool
    ) -> dict[str, float]: ...


class StepResult(NamedTuple):
    loss: float
    statistics: dict[str, float] | None


def train_step(
    network: Network,
    rule: LearningRule,
    optimizer: Optimizer,
    loss: Loss,
    x: Array,
    labels: Array,
    statistics: Statistics | None = None,
) -> StepResult:
    """Forward, loss, the rule's backward, the optimizer's step and (optionally) statistics.

    A loss that is not finite is returned at once, before anything is updated: the caller
    decides what a divergence means. A ``streaming`` rule takes ``streaming_step``.
    """
    network.keep_preactivations(statistics is not None)
    if rule.streaming:
        assert isinstance(rule, DirectFeedbackRule)
        batch = [x]
        del x  # handed over, not kept here: the streaming step frees it after the first block
        return streaming_step(network, rule, optimizer, loss, batch.pop(), labels, statistics)
    target = one_hot(labels, network.n_classes, network.dtype)
    value, error = loss.value_and_error(network.forward(x, train=True), target)
    if not math.isfinite(value):
        return StepResult(value, None)
    target += 1  # {-1, 1} -> {0, 2}
    target *= 0.5  # -> y01 in {0, 1}
    rule.backward(error, target, keep_signals=False)
    # the step summarises the gradients in the same pass (nothing it changes is summarised)
    summaries = optimizer.step(summarize_grads=statistics is not None)
    stats = None if statistics is None else statistics(network, summaries)
    for block in network.blocks:  # what the forward kept is not needed any more
        block.release()
    return StepResult(value, stats)


#: bytes of a block's projected signal that a streaming step may always make at once; past
#: that, only what keeps the step under the most its activations need (see streaming_step)
STREAMING_CHUNK_BYTES = 512 << 10


def feature_slices(block: Unit, batch: int, itemsize: int, chunk_bytes: int) -> list[slice]:
    """Consecutive slices of the block's output features (its last axis) whose signal for
    ``batch`` examples takes at most about ``chunk_bytes``; one slice of all when the whole
    fits. Widths are multiples of 8 where they can be (whole SIMD and BLAS panels)."""
    features = block.output_shape[-1]
    per_feature = batch * (block.output_size // features) * itemsize
    step = max(1, chunk_bytes // per_feature)
    step = step - step % 8 if step >= 8 else step
    return [slice(start, min(start + step, features)) for start in range(0, features, step)]


def streaming_step(
    network: Network,
    rule: DirectFeedbackRule,
    optimizer: Optimizer,
    loss: Loss,
    x: Array,
    labels: Array,
    statistics: Statistics | None = None,
    chunk_bytes: int = STREAMING_CHUNK_BYTES,
) -> StepResult:
    """A step of a rule whose hidden signal is known before the forward pass (DRTP): each
    hidden block takes its update as soon as its own forward is done, then releases what it
    kept, so that no more than one block's activations are held at a time. A block whose
    whole signal would take more than ``chunk_bytes`` and more than the room under the step's
    fullest point takes its update a slice of features at a time (the features of a block's
    local step are independent, batch norm's included), so that the signal adds little to
    the activations' memory.

    The numbers equal ``train_step``'s: a block's update changes nothing the blocks above
    it compute in the same step. (Bit for bit while each signal goes whole; a weight
    gradient taken in slices may differ in its last bits, as BLAS rounds a product's columns
    by the width it is given.) Only a loss that is not finite comes too late here to stop
    the hidden blocks' updates.
    """
    target = one_hot(labels, network.n_classes, network.dtype)
    target01 = (target + 1) * 0.5
    signal = rule.signal(target, target01)  # the error is not known yet: not used
    summarize = statistics is not None
    stats: dict[str, float] = {}
    h = x
    del x  # a caller that hands the batch over lets it go once the first block has used it
    # a block's signal may fill what the step holds at its fullest anyway (the most any block
    # holds alone); beyond that, and beyond chunk_bytes, it is made a few features at a time.
    # Half of that room: a slice's signal comes with a copy of the kept features it meets.
    itemsize, held = network.dtype.itemsize, None
    for k, block in enumerate(network.hidden_blocks):
        out = block.forward(h, train=True)
        slices: list[slice | None] = [None]  # the whole signal at once
        if h.shape[0] * block.output_size * itemsize > chunk_bytes:
            held = held or [block_held_values(b) for b in network.blocks]
            room = max(chunk_bytes, (max(held) - held[k]) * h.shape[0] * itemsize // 2)
            found = feature_slices(block, h.shape[0], itemsize, room)
            slices = [*found] if len(found) > 1 else slices
        for features in slices:
            # the projection is this step's own array: the block may compute in its memory
            projected = rule.project(signal, k, features)
            block.backward(projected, need_input_grad=False, overwrite=True, features=features)
            del projected  # before the next slice's is made
        summaries = optimizer.step(summarize, only=block.parameters())
        if statistics is not None:
            stats.update(statistics.of_block(k, block, summaries, hidden=True))
        block.release()
        h = out
    block = network.output_block
    value, error = loss.value_and_error(block.forward(h, train=True), target)
    if not math.isfinite(value):
        return StepResult(value, None)
    block.backward(error, need_input_grad=False)
    summaries = optimizer.step(summarize, only=block.parameters())
    if statistics is not None:
        k = len(network.hidden_blocks)
        stats.update(statistics.of_block(k, block, summaries, hidden=False))
    block.release()
    return StepResult(value, stats if statistics is not None else None)
