"""Probes: what a run measures at its start and at epoch ends, each a small object.

The training loop stays short: it calls every probe that is due and logs what it returns. A new
measurement is a new :class:`Probe`; nothing a probe computes may touch the run's gradients,
weights or random streams (both probes here evaluate without training-mode side effects).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..learning.loss import one_hot
from ..nn.layers import BatchNorm
from ..nn.network import Network
from .metrics import classification_scores, confusion, information_plane

if TYPE_CHECKING:
    from ..data import Dataset
    from .loop import Experiment

HSIC_EXAMPLES = 2000
#: values of the largest activation of one evaluation chunk: 4,096 examples of a dense net on
#: MNIST, 128 for the convnet of the README (its first convolution's 28x28x32 outputs)
EVAL_CHUNK_VALUES = 4096 * 784
EVAL_CHUNK = 4096  # examples, at most


class Probe:
    """Base class: a probe measures at epoch ends, or every ``every`` iterations when that is
    not 0; ``at_start`` probes also measure before training (epoch 0)."""

    at_start = False
    every = 0

    def __call__(self, exp: Experiment) -> dict:
        raise NotImplementedError


def eval_chunk(network: Network) -> int:
    """Examples per evaluation chunk: as many as keep the largest activation of a chunk near
    :data:`EVAL_CHUNK_VALUES` values (a convnet's activations are far larger per example)."""
    largest = 1
    for block in network.blocks:
        shape = block.input_shape
        for layer in block.layers:
            shape = layer.output_shape(shape)
            largest = max(largest, math.prod(shape))
    return max(1, min(EVAL_CHUNK, EVAL_CHUNK_VALUES // largest))


def predict(network: Network, dataset: Dataset, split: str) -> np.ndarray:
    """Arg-max predictions for a whole split, evaluated chunk by chunk (running BN statistics)."""
    chunks = dataset.chunks(split, network.dtype, eval_chunk(network))
    return np.concatenate([network.forward(x, train=False).argmax(axis=1) for x in chunks])


class Evaluation(Probe):
    """``train/*`` and ``test/*`` accuracy, precision and F1, and the test confusion matrix."""

    def __call__(self, exp: Experiment) -> dict:
        metrics: dict = {}
        ds = exp.dataset
        for split, labels in (("train", ds.y_train), ("test", ds.y_test)):
            if len(labels) == 0:
                continue
            predicted = predict(exp.model, ds, split)
            metrics.update(classification_scores(labels, predicted, split))
            if split == "test":
                metrics["test/confusion_matrix"] = confusion(labels, predicted, ds.n_classes)
        return metrics


class InformationPlane(Probe):
    """``hsic/xz/{k}`` and ``hsic/zy/{k}`` on the first training examples (at most
    :data:`HSIC_EXAMPLES`), for every block including the output one."""

    at_start = True

    def __call__(self, exp: Experiment) -> dict:
        ds, dtype = exp.dataset, exp.model.dtype
        x = next(ds.chunks("train", dtype, HSIC_EXAMPLES, limit=HSIC_EXAMPLES))
        targets = one_hot(ds.y_train[: len(x)], ds.n_classes, dtype)
        return information_plane(exp.model, x, targets)


class BatchNormRecalibration(Probe):
    """Re-estimates batch norm's running statistics under the current weights ("precise BN"),
    so that the probes after it evaluate with them: the mean and the biased variance of each
    batch-norm layer, averaged over the first ``batches`` training batches in order, from
    training-mode forwards that update nothing else (no gradient, no step, no random draw).

    The running averages of training mix statistics of weights that changed since; with
    binary weights and sign activations a few sign flips per step can move them enough to
    swing the evaluated accuracy by several points from one epoch to the next. Logs nothing.
    """

    at_start = True

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def __call__(self, exp: Experiment) -> dict:
        norms = [
            layer
            for block in exp.model.blocks
            for layer in block.layers
            if isinstance(layer, BatchNorm)
        ]
        if not norms:
            return {}
        momenta = [layer.momentum for layer in norms]
        size = exp.config.batchsize
        chunks = exp.dataset.chunks("train", exp.model.dtype, size, limit=self.batches * size)
        try:
            for k, x in enumerate(chunks, start=1):
                for layer in norms:  # running = (k - 1)/k * running + batch/k: the mean so far
                    layer.momentum = (k - 1) / k
                    layer.running_initialised = k > 1
                exp.model.forward(x, train=True)
        finally:
            for layer, momentum in zip(norms, momenta, strict=True):
                layer.momentum = momentum
            for block in exp.model.blocks:
                block.release()
        return {}


def default_probes() -> list[Probe]:
    """The measurements of the published code: evaluation and the HSIC plane."""
    return [Evaluation(), InformationPlane()]
