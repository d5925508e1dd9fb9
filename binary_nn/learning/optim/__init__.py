"""Optimizers (``--optimizer``) and learning-rate schedules (``--lr-schedule``).

An ``Optimizer`` works over parameters it does not own (as in ``torch.optim``), keeps
per-parameter state and saves it; a parameter knows its role, so that binary latent weights
can go to ``Bop`` and the rest to another optimizer (``CaseOptimizer``, larq's
idea). Adding an optimizer is one module and one line in ``OPTIMIZERS``, which maps a
name to a function from (named parameters, ``OptimizerSettings``, kernels) to an
optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...errors import ConfigError
from ...nn.kernels import KernelBackend
from ...nn.layers import Parameter
from ...registry import Registry
from .adam import Adam
from .base import Optimizer
from .bop import Bop
from .case import CaseOptimizer
from .schedules import SCHEDULES, Schedule
from .sgd import SGD


@dataclass(frozen=True)
class OptimizerSettings:
    """Every optimizer's hyperparameters (the ``--optimizer`` options of a run)."""

    lr: float = 1e-3
    weight_clipping: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    bop_threshold: float = 1e-8
    bop_gamma: float = 1e-4
    bop_other: str = "adam"


Factory = Callable[[Mapping[str, Parameter], OptimizerSettings, "KernelBackend | None"], Optimizer]


def _sgd(
    params: Mapping[str, Parameter], s: OptimizerSettings, k: KernelBackend | None
) -> Optimizer:
    return SGD(params, s.lr, s.weight_clipping, k, s.momentum, s.nesterov, s.weight_decay)


def _adam(
    params: Mapping[str, Parameter], s: OptimizerSettings, k: KernelBackend | None
) -> Optimizer:
    betas = (s.beta1, s.beta2)
    return Adam(params, s.lr, s.weight_clipping, k, betas, s.eps, s.weight_decay)


def _adamw(
    params: Mapping[str, Parameter], s: OptimizerSettings, k: KernelBackend | None
) -> Optimizer:
    betas = (s.beta1, s.beta2)
    return Adam(params, s.lr, s.weight_clipping, k, betas, s.eps, s.weight_decay, decoupled=True)


def _bop(
    params: Mapping[str, Parameter], s: OptimizerSettings, k: KernelBackend | None
) -> Optimizer:
    binary = {n: p for n, p in params.items() if p.role == "binary"}
    if not binary:
        raise ConfigError("--optimizer bop needs binary weights; add --binarize")
    others = {n: p for n, p in params.items() if p.role != "binary"}
    optimizers: dict[str, Optimizer] = {"bop": Bop(binary, s.bop_threshold, s.bop_gamma, k)}
    if others:
        optimizers[s.bop_other] = OPTIMIZERS.get(s.bop_other)(others, s, k)
    return CaseOptimizer(optimizers)


OPTIMIZERS: Registry[Factory] = Registry("optimizer", "--optimizer")
OPTIMIZERS.add("sgd", _sgd)
OPTIMIZERS.add("adam", _adam)
OPTIMIZERS.add("adamw", _adamw)
OPTIMIZERS.add("bop", _bop)
#: what ``--bop-other`` may name: the optimizers of real-valued parameters
OTHER_OPTIMIZERS = ("adam", "sgd")
#: each optimizer's learning rate when none is given: SGD's is the published rate for
#: gradients summed over the batch; Adam normalises the step, so its rate is PyTorch's and
#: Keras's (a rate of 1e-4 there barely moves a binary network in 20 epochs)
DEFAULT_RATES = {"sgd": 1e-4, "adam": 1e-3, "adamw": 1e-3}


def default_rate(optimizer: str, bop_other: str = "adam") -> float:
    """The rate ``--optimizer`` takes without ``--lr`` (Bop's is its ``--bop-other``'s, which
    learns every parameter that is not a binary weight)."""
    return DEFAULT_RATES[bop_other if optimizer == "bop" else optimizer]


def make_optimizer(
    name: str,
    parameters: Mapping[str, Parameter],
    settings: OptimizerSettings,
    kernels: KernelBackend | None = None,
) -> Optimizer:
    """The optimizer ``name`` (a key of ``OPTIMIZERS``) over ``parameters``."""
    return OPTIMIZERS.get(name)(parameters, settings, kernels)


__all__ = [
    "DEFAULT_RATES",
    "OPTIMIZERS",
    "OTHER_OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adam",
    "Bop",
    "CaseOptimizer",
    "Optimizer",
    "OptimizerSettings",
    "Schedule",
    "default_rate",
    "make_optimizer",
]
