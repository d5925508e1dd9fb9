"""Where a run stands: what a checkpoint must hold for the run to continue exactly, and which
epoch is the best one so far (model selection and early stopping)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: the metric a run selects its best epoch on, with a validation split, and without one (the
#: published study's "best test accuracy")
SELECT_ON_VALIDATION = "val/accuracy"
SELECT_ON_TEST = "test/accuracy"


@dataclass
class Selection:
    """The best epoch so far on :attr:`metric` (higher is better), and how many epochs have
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


def _is_score(key: str) -> bool:
    return key.split("/")[0] in ("train", "val", "test") and key != "test/confusion_matrix"


@dataclass
class Progress:
    """How far a run got, and everything besides the network, the rule's feedback and the
    optimizer's state that it needs to continue as if it had never stopped.

    ``batch`` is the number of batches done in epoch ``epoch + 1`` (0: at an epoch boundary);
    ``order`` that epoch's shuffle, ``loss_sum`` its losses so far; ``shuffle_state`` the
    shuffling generator's state after that shuffle was drawn; ``metrics_bytes`` how much of
    ``metrics.jsonl`` the state covers (a resumed run drops what was logged after it).
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
    seconds: float = 0.0
    batchnorm_ready: list[bool] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("order")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], order: np.ndarray | None) -> Progress:
        selection = Selection(**data.pop("selection"))
        return cls(**data, selection=selection, order=order)
