"""A sweep file's parameters as W&B defines them: a fixed ``value``, a list of ``values``, or a
``distribution`` with ``min``/``max`` (and ``q``), for the random and Bayesian methods."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

DISTRIBUTIONS = ("categorical", "uniform", "log_uniform_values", "q_uniform", "int_uniform")


@dataclass(frozen=True)
class Parameter:
    """One parameter of a sweep: ``values`` (a fixed value is one value) or a distribution
    between ``low`` and ``high`` (``q``: the step of ``q_uniform``)."""

    name: str
    distribution: str = "categorical"
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    q: float | None = None

    @property
    def fixed(self) -> bool:
        return self.distribution == "categorical" and len(self.values) == 1

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an Optuna ``trial``."""
        if self.distribution == "categorical":
            return trial.suggest_categorical(self.name, list(self.values))
        if self.distribution == "int_uniform":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        if self.distribution == "log_uniform_values":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.distribution == "q_uniform":
            return trial.suggest_float(self.name, self.low, self.high, step=self.q)
        return trial.suggest_float(self.name, self.low, self.high)


def parse_parameter(name: str, spec: Any, where: str) -> Parameter:
    """A parameter from its sweep file spec; errors name it."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: parameter {name!r} must be a mapping (value, values, ...)")
    if "value" in spec:
        return Parameter(name, values=(spec["value"],))
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: parameter {name!r} needs a non-empty 'values' list")
        return Parameter(name, values=tuple(values))
    if "min" not in spec or "max" not in spec:
        raise ConfigError(
            f"{where}: parameter {name!r} needs 'value', 'values', or 'min' and 'max' with a "
            f"'distribution' ({', '.join(DISTRIBUTIONS[1:])})"
        )
    low, high = spec["min"], spec["max"]
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300
        for v in (low, high)
    ):  # (a finite bound, and an integer one a float holds: Optuna computes in floats)
        raise ConfigError(f"{where}: parameter {name!r}: 'min' and 'max' must be finite numbers")
    # W&B's inference: integer bounds mean int_uniform, others uniform
    default = "int_uniform" if isinstance(low, int) and isinstance(high, int) else "uniform"
    distribution = spec.get("distribution", default)
    if distribution not in DISTRIBUTIONS[1:]:
        raise ConfigError(
            f"{where}: parameter {name!r}: distribution {distribution!r} is not one of "
            f"{', '.join(DISTRIBUTIONS[1:])}"
        )
    if not low < high:
        raise ConfigError(f"{where}: parameter {name!r}: 'min' must be below 'max'")
    if distribution == "log_uniform_values" and not low > 0:
        raise ConfigError(f"{where}: parameter {name!r}: log_uniform_values needs min > 0")
    q = spec.get("q", 1.0) if distribution == "q_uniform" else None
    if q is not None and not (isinstance(q, (int, float)) and q > 0 and math.isfinite(q)):
        raise ConfigError(f"{where}: parameter {name!r}: 'q' must be a number > 0")
    return Parameter(name, distribution, (), float(low), float(high), q)
