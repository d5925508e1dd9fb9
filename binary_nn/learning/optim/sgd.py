"""Stochastic gradient descent: plain (the published update), or with momentum."""

from __future__ import annotations

from collections.abc import Iterable

from ...errors import ConfigError
from ...nn.kernels import Array, ArrayStatistics, KernelBackend
from ...nn.layers import Parameter
from .base import NamedParameters, Optimizer


class SGD(Optimizer):
    """``p -= lr * grad`` (the published update, fused with the gradient's statistics), then
    weights clipped to ``[-c, c]``; with ``momentum``, ``torch.optim.SGD``'s heavy-ball or
    Nesterov momentum, and ``weight_decay`` as an L2 term added to the gradient (weights only).

    Parameters
    ----------
    parameters, lr, weight_clipping, kernels
        See ``Optimizer``.
    momentum : float
        In ``[0, 1)``; 0 is plain SGD.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float
        L2 coefficient on weights (not batch norm's parameters), >= 0.
    """

    name = "sgd"

    def __init__(
        self,
        parameters: NamedParameters | Iterable[Parameter],
        lr: float,
        weight_clipping: float = 0.0,
        kernels: KernelBackend | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(parameters, lr, weight_clipping, kernels)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ConfigError("Nesterov momentum needs a momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.plain = momentum == 0 and weight_decay == 0
        self.state_names = () if self.plain else ("momentum",)
        # plain SGD's numpy path multiplies into a scratch array, so that gradients stay intact
        self._scratch: dict[Parameter, Array] = {}

    def update(
        self, p: Parameter, state: dict[str, Array], t: int, summarize_grad: bool
    ) -> ArrayStatistics | None:
        clip = self.clip_of(p)
        if self.plain:
            scratch = self._scratch.get(p)
            if scratch is None:
                scratch = self._scratch[p] = self.kernels.xp.empty_like(p.value)
            return self.kernels.sgd_update(p.value, p.grad, self.lr, clip, scratch, summarize_grad)
        decay = self.weight_decay if p.is_weight else 0.0
        self.kernels.momentum_update(
            p.value, p.grad, state["momentum"], self.lr, self.momentum, decay, self.nesterov, clip
        )
        return None
