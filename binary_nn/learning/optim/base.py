"""The optimizer seam, as ``torch.optim`` has it: an optimizer works over parameters it does not
own, keeps per-parameter state, and saves and restores it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...nn.kernels import Array, ArrayStatistics, KernelBackend, default_kernels
from ...nn.layers import Parameter

Summaries = dict[Parameter, ArrayStatistics]
NamedParameters = Mapping[str, Parameter] | Iterable[Parameter]


def named(parameters: NamedParameters) -> dict[str, Parameter]:
    """Parameters by name: a mapping as given (``Network.named_parameters()``), a sequence
    numbered."""
    if isinstance(parameters, Mapping):
        return dict(parameters)
    return {str(k): p for k, p in enumerate(parameters)}


class Optimizer:
    """Base class: updates parameters from the gradients a learning rule filled.

    A subclass implements ``update`` (one parameter, its state, the current rate) and
    names its per-parameter state in ``state_names`` (arrays shaped like the parameter);
    the base keeps the state, the step counts, the clipping and ``state_dict``. An
    optimizer never changes a gradient (the per-iteration statistics read them after the
    step).

    Parameters
    ----------
    parameters : mapping of name to Parameter, or sequence of Parameter
        What to update. Names key the state in checkpoints (``optimizer.{name}.{state}``).
    lr : float
        Learning rate, > 0; a schedule may change ``lr`` between epochs.
    weight_clipping : float
        Clip every weight (binary latent or real; not batch norm's) to ``[-c, c]`` after its
        update; off when ``c <= 0``.
    kernels : KernelBackend, optional
        The fused updates (the network's, ``default_kernels`` when
        not given).
    """

    name = ""
    #: the arrays of state each parameter keeps, e.g. ``("m", "v")`` for Adam
    state_names: tuple[str, ...] = ()

    def __init__(
        self,
        parameters: NamedParameters,
        lr: float,
        weight_clipping: float = 0.0,
        kernels: KernelBackend | None = None,
    ) -> None:
        if not lr > 0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        self.named_parameters = named(parameters)
        self.parameters = list(self.named_parameters.values())
        self.lr = float(lr)
        self.weight_clipping = float(weight_clipping)
        self.kernels = kernels if kernels is not None else default_kernels()
        self.state: dict[Parameter, dict[str, Array]] = {}
        self.steps: dict[Parameter, int] = dict.fromkeys(self.parameters, 0)

    def clip_of(self, p: Parameter) -> float:
        return self.weight_clipping if p.is_weight else 0.0

    def state_of(self, p: Parameter) -> dict[str, Array]:
        """The parameter's state arrays, made (zeros) on first use."""
        if p not in self.state:
            zeros = self.kernels.xp.zeros_like
            self.state[p] = {name: zeros(p.value) for name in self.state_names}
        return self.state[p]

    def step(
        self, summarize_grads: bool = False, only: Iterable[Parameter] | None = None
    ) -> Summaries | None:
        """Update every parameter (``only`` these, when given: a block's, when it updates on
        its own). With ``summarize_grads`` an optimizer may return the gradients' statistics
        taken in the same pass (plain SGD does); the statistics take the rest themselves."""
        summaries: Summaries = {}
        for p in self.parameters if only is None else only:
            self.steps[p] += 1
            summary = self.update(p, self.state_of(p), self.steps[p], summarize_grads)
            if summary is not None:
                summaries[p] = summary
        return summaries if summarize_grads else None

    def update(
        self, p: Parameter, state: dict[str, Array], t: int, summarize_grad: bool
    ) -> ArrayStatistics | None:
        """Update ``p`` in place from ``p.grad``; ``t`` counts its updates, this one included."""
        raise NotImplementedError

    def state_size(self) -> int:
        """Values of state the optimizer keeps for all its parameters (Adam: 2 per parameter
        value): what the cost summary and the memory estimate count. Nothing is allocated."""
        return len(self.state_names) * sum(p.size for p in self.parameters)

    def state_dict(self) -> dict[str, Array]:
        """``{name}.{state}`` -> a copy of each state array, and ``{name}.step``."""
        out: dict[str, Array] = {}
        for name, p in self.named_parameters.items():
            for key, array in self.state_of(p).items():
                out[f"{name}.{key}"] = np.array(self.kernels.to_host(array))  # a host copy
            out[f"{name}.step"] = np.array(self.steps[p])
        return out

    def load_state_dict(self, state: Mapping[str, Array]) -> None:
        """Restore what ``state_dict`` gave (the same parameters' names and shapes)."""
        wanted = set(self.state_dict())
        if set(state) != wanted:
            missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
            raise ConfigError(
                f"the {self.name} optimizer's state does not match: missing {missing[:3]}, "
                f"unexpected {extra[:3]} (was it saved with another --optimizer?)"
            )
        for name, p in self.named_parameters.items():  # every array checked before any is used
            for key, array in self.state_of(p).items():
                _check_state(f"{name}.{key}", np.asarray(state[f"{name}.{key}"]), array.shape)
            _check_state(f"{name}.step", np.asarray(state[f"{name}.step"]), (), integer=True)
        for name, p in self.named_parameters.items():
            for key, array in self.state_of(p).items():
                array[...] = self.kernels.asarray(state[f"{name}.{key}"])
            self.steps[p] = int(state[f"{name}.step"])

    def settings(self) -> dict[str, Any]:
        """The hyperparameters, for logs."""
        return {"optimizer": self.name, "lr": self.lr}


def _check_state(
    key: str, value: np.ndarray, shape: tuple[int, ...], integer: bool = False
) -> None:
    """Refuse in one sentence a stored state array of another shape, of a non-numeric dtype,
    holding NaN or infinities (a checkpoint that was damaged or saved from a diverged run), or
    a step count that is not a whole number >= 0."""
    problem = None
    if tuple(value.shape) != tuple(shape):
        problem = f"has shape {value.shape}, not {tuple(shape)}"
    elif value.dtype.kind not in ("iu" if integer else "fiu"):
        problem = f"holds {value.dtype} values, not {'integers' if integer else 'numbers'}"
    elif not np.isfinite(value).all():
        problem = "holds NaN or infinite values"
    elif integer and (value < 0).any():
        problem = "holds a negative step count"
    if problem is not None:
        raise ConfigError(
            f"the optimizer state {key} {problem}; the checkpoint is damaged or was saved from "
            "a diverged run: start again, or --load the weights without the optimizer's state"
        )
