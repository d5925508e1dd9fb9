"""Learning-rate schedules: the rate of each epoch, from the base rate of ``--lr``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...registry import Registry


@dataclass(frozen=True)
class Schedule:
    """The rate in force during ``epoch`` (1-based) of ``epochs``.

    A linear warm-up first, over ``warmup`` epochs: epoch ``e <= warmup`` runs at
    ``lr * e / (warmup + 1)``; then, counting ``k = e - warmup - 1`` epochs from the end of
    the warm-up, over ``n = epochs - warmup`` epochs:

    - ``constant``: ``lr``;
    - ``step``: ``lr * factor ** (k // step)``;
    - ``exponential``: ``lr * factor ** k``;
    - ``cosine``: ``lr_min + (lr - lr_min) (1 + cos(pi k / n)) / 2``, from ``lr`` down
      towards ``lr_min`` (SGDR without restarts).
    """

    kind: str = "constant"
    lr: float = 1e-3
    epochs: int = 1
    warmup: int = 0
    lr_min: float = 0.0
    step: int = 1
    factor: float = 0.1

    def rate(self, epoch: int) -> float:
        if epoch <= self.warmup:
            return self.lr * epoch / (self.warmup + 1)
        k, n = epoch - self.warmup - 1, max(1, self.epochs - self.warmup)
        if self.kind == "step":
            return self.lr * self.factor ** (k // self.step)
        if self.kind == "exponential":
            return self.lr * self.factor**k
        if self.kind == "cosine":
            return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * k / n)) / 2
        return self.lr


SCHEDULES: Registry[str] = Registry("learning-rate schedule", "--lr-schedule")
for _name in ("constant", "step", "exponential", "cosine"):
    SCHEDULES.add(_name, _name)
