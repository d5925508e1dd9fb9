"""Probes: what a run measures at its start and at epoch ends, each a small object.

The training loop stays short: it asks every probe whether it is due (``Probe.due``) and
logs what the due ones return. A probe sees the run through a ``ProbeContext``: the
network, the rule, the loss and the data, nothing else (not the optimizer, not the random
streams). A new measurement is a new ``Probe``; nothing it computes may touch the run's
gradients, weights or random streams (the probes here evaluate without training-mode side
effects, or on a copy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Dataset
from ..learning.cost import largest_activation
from ..learning.loss import Loss, one_hot
from ..learning.rules import LearningRule
from ..nn.layers import BatchNorm
from ..nn.network import Network
from .device_data import DeviceData
from .metrics import classification_scores, confusion, information_plane

HSIC_EXAMPLES = 2000
#: values of the largest activation of one evaluation chunk: 4,096 examples of a dense net on
#: MNIST, 128 for the convnet of the README (its first convolution's 28x28x32 outputs)
EVAL_CHUNK_VALUES = 4096 * 784
EVAL_CHUNK = 4096  # examples, at most


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may read of a run: ``data`` has the dataset's examples where the network
    computes (see ``DeviceData``)."""

    network: Network
    rule: LearningRule
    loss: Loss
    dataset: Dataset
    data: DeviceData

    @classmethod
    def of(cls, network: Network, rule: LearningRule, loss: Loss, dataset: Dataset) -> ProbeContext:
        """A context whose examples go to the network's kernel backend."""
        return cls(
            network, rule, loss, dataset, DeviceData(dataset, network.kernels, network.dtype)
        )


class Probe:
    """Base class: a probe measures at epoch ends, or every ``every`` iterations when that is
    not 0; ``at_start`` probes also measure before training (epoch 0)."""

    at_start = False
    every = 0

    def due(self, *, start: bool = False, iteration: int | None = None) -> bool:
        """Whether to measure now: before training (``start``), after ``iteration`` (checked
        after every iteration), or at an epoch end (neither)."""
        if start:
            return self.at_start
        if iteration is not None:
            return self.every > 0 and iteration % self.every == 0
        return self.every == 0

    def __call__(self, context: ProbeContext) -> dict[str, Any]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """What the probe remembers between measurements (checkpoints keep it, so that a
        resumed run measures as the uninterrupted one would)."""
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state_dict``."""


def eval_chunk(network: Network) -> int:
    """Examples per evaluation chunk: as many as keep the largest activation of a chunk near
    ``EVAL_CHUNK_VALUES`` values (a convnet's activations are far larger per example)."""
    return max(1, min(EVAL_CHUNK, EVAL_CHUNK_VALUES // largest_activation(network)))


def predict(network: Network, data: Dataset | DeviceData, split: str) -> np.ndarray:
    """Arg-max predictions for a whole split, evaluated chunk by chunk (running BN
    statistics) where the network computes; only the predicted labels come back."""
    if isinstance(data, Dataset):
        data = DeviceData(data, network.kernels, network.dtype)
    xp = network.kernels.xp
    size = eval_chunk(network)
    chunks = data.chunks(split, size)
    n = len(data.dataset.labels(split))
    if n > size:  # a bar on a terminal when the pass takes more than a few seconds
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, total=-(-n // size), desc=f"evaluating {split}", unit="chunk",
                      delay=3, leave=False, disable=None, file=sys.stderr)  # fmt: skip
    predicted = [xp.argmax(network.forward(x, train=False), axis=1) for x in chunks]
    if not predicted:
        return np.zeros(0, np.intp)
    return network.kernels.to_host(xp.concat(predicted))


class Evaluation(Probe):
    """``train/*``, ``val/*`` (with a validation split) and ``test/*`` accuracy, precision and
    F1, and the test confusion matrix."""

    def __call__(self, context: ProbeContext) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        ds = context.dataset
        for split in ds.splits:
            labels = ds.labels(split)
            predicted = predict(context.network, context.data, split)
            metrics.update(classification_scores(labels, predicted, split))
            if split == "test":
                metrics["test/confusion_matrix"] = confusion(labels, predicted, ds.n_classes)
        return metrics


class InformationPlane(Probe):
    """``hsic/xz/{k}`` and ``hsic/zy/{k}`` on the first training examples (at most
    ``HSIC_EXAMPLES``), for every block including the output one."""

    at_start = True

    def __call__(self, context: ProbeContext) -> dict[str, Any]:
        ds, dtype = context.dataset, context.network.dtype
        x = next(context.data.chunks("train", HSIC_EXAMPLES, limit=HSIC_EXAMPLES))
        targets = one_hot(ds.y_train[: x.shape[0]], ds.n_classes, dtype)
        return dict(information_plane(context.network, x, targets))


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

    def __init__(self, batches: int, batchsize: int) -> None:
        self.batches = batches
        self.batchsize = batchsize

    def __call__(self, context: ProbeContext) -> dict[str, Any]:
        network = context.network
        norms = [layer for layer in network.layers() if isinstance(layer, BatchNorm)]
        if not norms:
            return {}
        momenta = [layer.momentum for layer in norms]
        size = self.batchsize
        chunks = context.data.chunks("train", size, limit=self.batches * size)
        try:
            for k, x in enumerate(chunks, start=1):
                for layer in norms:  # running = (k - 1)/k * running + batch/k: the mean so far
                    layer.momentum = (k - 1) / k
                    layer.running_initialised = k > 1
                network.forward(x, train=True)
        finally:
            for layer, momentum in zip(norms, momenta, strict=True):
                layer.momentum = momentum
            for block in network.blocks:
                block.release()
        return {}


def default_probes() -> list[Probe]:
    """The measurements of the published code: evaluation and the HSIC plane."""
    return [Evaluation(), InformationPlane()]
