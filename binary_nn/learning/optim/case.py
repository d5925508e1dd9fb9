"""larq's CaseOptimizer: each parameter to the optimizer its role calls for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import ConfigError
from ...nn.kernels import Array, ArrayStatistics
from ...nn.layers import Parameter
from .base import Optimizer, Summaries


class CaseOptimizer(Optimizer):
    """Optimizers that share a network's parameters, each taking the ones it is given (say
    ``Bop`` for the binary weights, Adam for the rest).

    Every parameter belongs to exactly one of them. ``lr`` sets the rate of every inner
    optimizer that has one (Bop's threshold is not a rate). The state is saved under each
    inner optimizer's name: ``{optimizer}.{parameter}.{state}``.
    """

    name = "case"

    def __init__(self, optimizers: Mapping[str, Optimizer]) -> None:
        self.optimizers = dict(optimizers)
        owners: dict[Parameter, str] = {}
        for key, opt in self.optimizers.items():
            for p in opt.parameters:
                if p in owners:
                    raise ConfigError(f"a parameter belongs to both {owners[p]} and {key}")
                owners[p] = key
        # not Optimizer.__init__: the rates and the state are the inner optimizers'
        self.named_parameters = {
            f"{key}.{name}": p
            for key, opt in self.optimizers.items()
            for name, p in opt.named_parameters.items()
        }
        self.parameters = list(self.named_parameters.values())
        self.kernels = next(iter(self.optimizers.values())).kernels
        self.weight_clipping = 0.0
        self.state, self.steps = {}, {}

    @property
    def lr(self) -> float:
        rates = [o.lr for o in self.optimizers.values() if o.name != "bop"]
        return rates[0] if rates else 0.0

    @lr.setter
    def lr(self, value: float) -> None:
        for opt in self.optimizers.values():
            if opt.name != "bop":
                opt.lr = value

    def step(
        self, summarize_grads: bool = False, only: Iterable[Parameter] | None = None
    ) -> Summaries | None:
        wanted = None if only is None else set(only)
        summaries: Summaries = {}
        for opt in self.optimizers.values():
            mine = opt.parameters if wanted is None else [p for p in opt.parameters if p in wanted]
            if mine:
                summaries.update(opt.step(summarize_grads, only=mine) or {})
        return summaries if summarize_grads else None

    def update(
        self, p: Parameter, state: dict[str, Array], t: int, summarize_grad: bool
    ) -> ArrayStatistics | None:
        raise NotImplementedError("a case optimizer steps through its optimizers")

    def state_size(self) -> int:
        return sum(o.state_size() for o in self.optimizers.values())

    def state_dict(self) -> dict[str, Array]:
        return {
            f"{key}.{name}": array
            for key, opt in self.optimizers.items()
            for name, array in opt.state_dict().items()
        }

    def load_state_dict(self, state: Mapping[str, Array]) -> None:
        for key, opt in self.optimizers.items():
            prefix = f"{key}."
            opt.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        unknown = [k for k in state if k.split(".", 1)[0] not in self.optimizers]
        if unknown:
            raise ConfigError(
                f"optimizer state {unknown[0]} belongs to none of {list(self.optimizers)}"
            )

    def settings(self) -> dict[str, Any]:
        return {key: opt.settings() for key, opt in self.optimizers.items()}
