"""Plain SGD with optional weight clipping, applied after a rule has filled the gradients."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ConfigError
from ..nn.kernels import ArrayStatistics, KernelBackend, default_kernels
from ..nn.layers import Parameter


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
    kernels : KernelBackend, optional
        The fused update (the network's, :func:`~binary_nn.nn.kernels.default_kernels` when
        not given).
    """

    def __init__(
        self,
        parameters: Iterable[Parameter],
        lr: float,
        weight_clipping: float = 0.0,
        kernels: KernelBackend | None = None,
    ) -> None:
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.parameters = list(parameters)
        self.lr = float(lr)
        self.weight_clipping = float(weight_clipping)
        self.kernels = kernels if kernels is not None else default_kernels()
        # one scratch array per parameter, so that the gradients stay readable after a step
        self._scratch = {p: np.empty_like(p.value) for p in self.parameters}

    def step(
        self, summarize_grads: bool = False, only: Iterable[Parameter] | None = None
    ) -> dict[Parameter, ArrayStatistics] | None:
        """Update every parameter (``only`` these, when given: a block's, when it updates on
        its own); with ``summarize_grads``, also return a
        :class:`~binary_nn.nn.kernels.ArrayStatistics` of each gradient, taken in the same pass."""
        summaries: dict[Parameter, ArrayStatistics] = {}
        for p in self.parameters if only is None else only:
            clip = self.weight_clipping if p.kind == "weight" else 0.0
            summary = self.kernels.sgd_update(
                p.value, p.grad, self.lr, clip, self._scratch[p], summarize_grads
            )
            if summary is not None:
                summaries[p] = summary
        return summaries if summarize_grads else None
