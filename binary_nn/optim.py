"""Plain SGD with optional weight clipping, applied after a rule has filled the gradients."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import ConfigError
from .layers import Parameter


class SGD:
    """``p -= lr * grad`` for every parameter, then Linear weights clipped to ``[-c, c]``.

    Parameters
    ----------
    parameters : iterable of Parameter
        What to update (weights, batch-norm gamma and beta).
    lr : float
        Learning rate, > 0.
    weight_clipping : float
        ``c``; clipping is off when ``c <= 0``.
    """

    def __init__(self, parameters: Iterable[Parameter], lr: float, weight_clipping: float = 0.0):
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.parameters = list(parameters)
        self.lr = float(lr)
        self.weight_clipping = float(weight_clipping)
        # one scratch array per parameter, so that the gradients stay readable after a step
        self._scratch = [np.empty_like(p.value) for p in self.parameters]

    def step(self) -> None:
        clip = self.weight_clipping
        for p, scratch in zip(self.parameters, self._scratch, strict=True):
            np.multiply(p.grad, self.lr, out=scratch)
            p.value -= scratch
            if clip > 0 and p.kind == "weight":
                np.clip(p.value, -clip, clip, out=p.value)
