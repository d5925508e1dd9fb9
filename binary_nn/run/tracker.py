"""Where a run's configuration and metrics go: the ``Tracker`` hooks.

Every destination (the run directory, the console, Weights & Biases) is a tracker; the training
loop calls the same hooks on each of them, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TerminateRun(Exception):
    """Raised by a tracker to end the run at an epoch end (a search's early termination): the
    run finishes with the status ``terminated``, its directory and metrics kept."""


class Tracker:
    """Hooks a trainer calls; every one is optional."""

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        """The resolved configuration and facts about the model (size, parameters)."""

    def epoch_start(self, epoch: int, n_iterations: int) -> None:
        pass

    def log_batch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        pass

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        """End-of-epoch metrics; epoch 0 holds what is measured before training."""

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def abort(self, summary: dict[str, Any]) -> None:
        """The run stopped before it finished (Ctrl-C, an error): no summary is written."""


class EpochCallback(Tracker):
    """A function called at every epoch end, ``fn(epoch, metrics)`` (epoch 0: before
    training), with what the probes measured; for the Python API's ``callbacks``."""

    def __init__(self, fn: Callable[[int, dict[str, Any]], object]) -> None:
        self.fn = fn

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        self.fn(epoch, metrics)


def as_tracker(callback: Tracker | Callable[[int, dict[str, Any]], object]) -> Tracker:
    """A tracker as it is; a function as an ``EpochCallback``."""
    if isinstance(callback, Tracker):
        return callback
    if callable(callback):
        return EpochCallback(callback)
    raise TypeError(f"a callback is a Tracker or a function (epoch, metrics), got {callback!r}")
