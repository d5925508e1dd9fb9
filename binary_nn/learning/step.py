"""One training step, the same for the trainer, the benchmarks and the tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

from ..nn.kernels import Summary
from ..nn.layers import Parameter
from ..nn.network import Network
from .loss import MSELoss, one_hot
from .optim import SGD
from .rules import LearningRule

#: Per-iteration statistics: the network after its update, and the gradients' summaries the
#: optimizer took in the same pass (see :class:`binary_nn.run.metrics.BatchStatistics`).
Statistics = Callable[[Network, Mapping[Parameter, Summary] | None], dict[str, float]]


class StepResult(NamedTuple):
    loss: float
    statistics: dict[str, float] | None


def train_step(
    network: Network,
    rule: LearningRule,
    optimizer: SGD,
    loss: MSELoss,
    x: np.ndarray,
    labels: np.ndarray,
    statistics: Statistics | None = None,
) -> StepResult:
    """Forward, loss, the rule's backward, the optimizer's step and (optionally) statistics.

    A loss that is not finite is returned at once, before anything is updated: the caller
    decides what a divergence means.
    """
    target = one_hot(labels, network.n_classes, network.dtype)
    value, error = loss.value_and_error(network.forward(x, train=True), target)
    if not np.isfinite(value):
        return StepResult(value, None)
    target += 1  # {-1, 1} -> {0, 2}
    target *= 0.5  # -> y01 in {0, 1}
    rule.backward(error, target)
    # the step summarises the gradients in the same pass (nothing it changes is summarised)
    summaries = optimizer.step(summarize_grads=statistics is not None)
    return StepResult(value, None if statistics is None else statistics(network, summaries))
