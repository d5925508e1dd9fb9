"""Bop (Helwegen et al., NeurIPS 2019): binary weights flipped on a momentum threshold."""

from __future__ import annotations

from ...errors import ConfigError
from ...nn.kernels import Array, ArrayStatistics, KernelBackend
from ...nn.layers import Parameter
from .base import NamedParameters, Optimizer


class Bop(Optimizer):
    """The binary optimizer: for each binary weight, an exponential moving average of its
    gradient, ``m = (1 - gamma) m + gamma grad``; the weight flips when ``|m| > threshold``
    and ``m`` agrees in sign with it (the gradient keeps pushing against it).

    Bop's weights are the binary weights themselves: the latent weights are set to their signs
    (+-1) at Bop's first step, and a flip negates one. Only parameters whose role is
    ``binary`` are Bop's (see ``CaseOptimizer`` for the
    rest). ``lr`` is not used: Bop has a threshold instead; ``flips`` counts the flips of
    the last step.

    Parameters
    ----------
    parameters, kernels
        See ``Optimizer``.
    threshold : float
        tau, > 0 (larq's default 1e-8).
    gamma : float
        The momentum's adaptivity, in (0, 1] (larq's default 1e-4).
    """

    name = "bop"
    state_names = ("m",)

    def __init__(
        self,
        parameters: NamedParameters,
        threshold: float = 1e-8,
        gamma: float = 1e-4,
        kernels: KernelBackend | None = None,
    ) -> None:
        super().__init__(parameters, 1.0, 0.0, kernels)
        not_binary = [n for n, p in self.named_parameters.items() if p.role != "binary"]
        if not_binary:
            raise ConfigError(f"Bop flips binary weights only, got {', '.join(not_binary[:3])}")
        if not threshold > 0:
            raise ConfigError(f"--bop-threshold must be > 0, got {threshold}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"--bop-gamma must be in (0, 1], got {gamma}")
        self.threshold, self.gamma = float(threshold), float(gamma)
        self.flips = 0

    def update(
        self, p: Parameter, state: dict[str, Array], t: int, summarize_grad: bool
    ) -> ArrayStatistics | None:
        if t == 1:  # the binary weights themselves, +-1 (sign(0) = -1)
            self.kernels.sign_into(p.value, p.value)
        self.flips += self.kernels.bop_update(
            p.value, p.grad, state["m"], self.gamma, self.threshold
        )
        return None
