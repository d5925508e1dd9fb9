"""Learning-rate schedules: the rate of each epoch, from the base rate of ``--lr``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...registry import Registry


@dataclass(frozen=True)
class Schedule:
    """The rate in force during ``epoch`` (1-based) of ``epochs`` (``E``), as the behaviour
    spec fixes it. With ``e = epoch - 1`` the epoch index from 0:

    - ``constant``: ``lr``;
    - ``step``: ``lr * factor ** (e // step)``;
    - ``exponential``: ``lr * factor ** e``;
    - ``cosine``: ``lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2``, from ``lr`` down towards
      ``lr_min`` (SGDR without restarts);

    and a linear warm-up over the first ``warmup`` epochs, from ``1 / warmup`` of the
    schedule's value up to it: epoch index ``e < warmup`` runs at ``(e + 1) / warmup`` of it.
    """

    kind: str = "constant"
    lr: float = 1e-3
    epochs: int = 1
    warmup: int = 0
    lr_min: float = 0.0
    step: int = 1
    factor: float = 0.1

    def rate(self, epoch: int) -> float:
        e = epoch - 1
        rate = self.lr
        if self.kind == "step":
            rate = self.lr * self.factor ** (e // self.step)
        elif self.kind == "exponential":
            rate = self.lr * self.factor**e
        elif self.kind == "cosine":
            cosine = (1 + math.cos(math.pi * e / self.epochs)) / 2
            rate = self.lr_min + (self.lr - self.lr_min) * cosine
        if e < self.warmup:
            rate *= (e + 1) / self.warmup
        return rate


SCHEDULES: Registry[str] = Registry("learning-rate schedule", "--lr-schedule")
for _name in ("constant", "step", "exponential", "cosine"):
    SCHEDULES.add(_name, _name)
