"""Adam and AdamW: per-parameter rates from the gradients' first and second moments."""

from __future__ import annotations

from ...errors import ConfigError
from ...nn.kernels import Array, ArrayStatistics, KernelBackend
from ...nn.layers import Parameter
from .base import NamedParameters, Optimizer


class Adam(Optimizer):
    """``torch.optim.Adam`` (``decoupled``: ``AdamW``), in one fused pass per parameter.

    Adam divides each step by the gradient's running scale, so, unlike SGD's, its rate does
    not depend on gradients being batch sums; and its second moment keeps weights whose
    gradient a sign saturates from being frozen (Liu et al., ICML 2021).

    Parameters
    ----------
    parameters, lr, weight_clipping, kernels
        See ``Optimizer``.
    betas : (float, float)
        Decay of the first and second moments, each in ``[0, 1)``.
    eps : float
        Added to the denominator, > 0.
    weight_decay : float
        On weights (not batch norm's parameters): an L2 term added to the gradient, or with
        ``decoupled`` a shrink ``p *= 1 - lr * weight_decay`` before the step (AdamW).
    """

    name = "adam"
    state_names = ("m", "v")

    def __init__(
        self,
        parameters: NamedParameters,
        lr: float,
        weight_clipping: float = 0.0,
        kernels: KernelBackend | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(parameters, lr, weight_clipping, kernels)
        if not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"Adam's betas must be in [0, 1), got {betas}")
        if not eps > 0:
            raise ConfigError(f"Adam's eps must be > 0, got {eps}")
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.weight_decay, self.decoupled = float(weight_decay), decoupled
        self.name = "adamw" if decoupled else "adam"

    def update(
        self, p: Parameter, state: dict[str, Array], t: int, summarize_grad: bool
    ) -> ArrayStatistics | None:
        decay = self.weight_decay if p.is_weight else 0.0
        self.kernels.adam_update(
            p.value, p.grad, state["m"], state["v"], t, self.lr, self.betas, self.eps,
            decay, self.decoupled, self.clip_of(p),
        )  # fmt: skip
        return None
