"""Where a run stands: what a checkpoint must hold for the run to continue exactly, and which
epoch is the best one so far (model selection and early stopping)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..schema import Record

#: the metric a run selects its best epoch on, with a validation split, and without one (the
#: published study's "best test accuracy")
SELECT_ON_VALIDATION = "val/accuracy"
SELECT_ON_TEST = "test/accuracy"


@dataclass
class Selection:
    """The best epoch so far on ``metric`` (higher is better), and how many epochs have
    passed without improving on it."""

    metric: str = SELECT_ON_TEST
    best: float = -math.inf
    epoch: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    stale: int = 0

    def update(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Take an epoch's metrics; True when it is the new best."""
        value = metrics.get(self.metric)
        if isinstance(value, (int, float)) and value > self.best:
            self.best, self.epoch, self.stale = float(value), epoch, 0
            self.metrics = {k: v for k, v in metrics.items() if _is_score(k)}
            return True
        self.stale += 1
        return False

    @classmethod
    def from_record(cls, record: Record) -> Selection:
        """What ``dataclasses.asdict`` of one wrote, read back with checks."""
        return cls(
            metric=record.text("metric"),
            best=record.number("best", finite=False),  # -inf until an epoch is scored
            epoch=record.integer("epoch"),
            metrics=record.mapping("metrics"),
            stale=record.integer("stale"),
        )

    def summary(self) -> dict[str, Any]:
        """``best/epoch``, ``best/metric`` and every score at the best epoch as ``best/<key>``
        (so ``best/test/accuracy`` is the test accuracy of the selected epoch)."""
        if not self.epoch:
            return {}
        return {
            "best/metric": self.metric,
            "best/epoch": self.epoch,
            **{f"best/{k}": v for k, v in self.metrics.items()},
        }


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_score(key: str) -> bool:
    return key.split("/")[0] in ("train", "val", "test") and key != "test/confusion_matrix"


@dataclass
class Progress:
    """How far a run got, and everything besides the network, the rule's feedback and the
    optimizer's state that it needs to continue as if it had never stopped.

    ``batch`` is the number of batches done in epoch ``epoch + 1`` (0: at an epoch boundary);
    ``order`` that epoch's shuffle, ``loss_sum`` its losses so far; ``shuffle_state`` the
    shuffling generator's state after that shuffle was drawn; ``metrics_bytes`` how much of
    ``metrics.jsonl`` the state covers (a resumed run drops what was logged after it) and
    ``metrics_digest`` the sha256 of those bytes (a log that is not the run's is refused);
    ``planned_epochs`` the run's ``--epochs`` when the state was taken, and ``stopped_early``
    whether early stopping ended it there (a resume then has nothing to do unless
    ``--epochs`` grows).
    """

    epoch: int = 0
    iteration: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    order: np.ndarray | None = None
    shuffle_state: dict[str, Any] = field(default_factory=dict)
    selection: Selection = field(default_factory=Selection)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    metrics_bytes: int = 0
    metrics_digest: str = ""
    seconds: float = 0.0
    batchnorm_ready: list[bool] = field(default_factory=list)
    planned_epochs: int = 0
    stopped_early: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("order")
        return data

    @classmethod
    def from_json(cls, record: Record, order: np.ndarray | None) -> Progress:
        """What ``to_json`` wrote, each field checked for its type and range (a damaged or
        tampered checkpoint is refused in one sentence naming the field); ``order`` is checked
        against the run by ``check_against``. Checkpoints written before a field existed
        give its default."""
        return cls(
            epoch=record.integer("epoch"),
            iteration=record.integer("iteration"),
            batch=record.integer("batch"),
            loss_sum=record.number("loss_sum"),
            order=order,
            shuffle_state=record.mapping("shuffle_state"),
            selection=Selection.from_record(record.record("selection")),
            last_metrics=record.mapping("last_metrics"),
            metrics_bytes=record.integer("metrics_bytes"),
            metrics_digest=record.text("metrics_digest", default=""),
            seconds=record.number("seconds", low=0),
            batchnorm_ready=record.items("batchnorm_ready", _is_bool, "true/false"),
            planned_epochs=record.integer("planned_epochs", default=0),
            stopped_early=record.boolean("stopped_early", default=False),
        )

    def check_against(self, n_train: int, batchsize: int, n_batchnorms: int, where: Record) -> None:
        """Refuse, naming the field, a progress that cannot belong to a run with this many
        training examples, this batch size and these batch norm layers."""
        n_batches = n_train // batchsize
        if self.batch > n_batches or (self.batch and self.order is None):
            raise where.error(f"holds batch {self.batch} of an epoch of {n_batches} batches")
        if self.batch:
            assert self.order is not None
            order = self.order
            if (
                order.shape != (n_train,)
                or order.dtype.kind not in "iu"
                or not np.array_equal(np.sort(order), np.arange(n_train))
            ):
                raise where.error(
                    f"holds a shuffle order that is not a permutation of the {n_train} "
                    "training examples"
                )
        if len(self.batchnorm_ready) not in (0, n_batchnorms):
            raise where.error(
                f"describes {len(self.batchnorm_ready)} batch norm layers, the network has "
                f"{n_batchnorms}"
            )

    def finished(self, epochs: int) -> bool:
        """Whether the run this is the progress of has nothing left to do with ``epochs``
        epochs: it trained them all, or early stopping ended it and ``epochs`` is not more
        than it was then."""
        return self.epoch >= epochs or (self.stopped_early and epochs <= self.planned_epochs)
