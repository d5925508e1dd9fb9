"""A W&B sweep file, read and checked before anything runs: method, metric, parameters
(values or distributions), ``run_cap``, ``early_terminate`` and the command's fixed
arguments. ``wandb sweep FILE`` accepts the same file unchanged."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_yaml
from ..options import by_name
from ..run.config import TrainConfig
from .space import Parameter, parse_parameter

ENTRY_POINTS = (("-m", "binary_nn.train"), ("binary-nn",))
DROPPED_MACROS = {"${env}", "${interpreter}", "${program}"}
ARGS_MACRO = "${args_no_boolean_flags}"
#: the most epochs an early termination bracket may name
MAX_EPOCHS = 1_000_000


@dataclass
class Sweep:
    """A parsed sweep file: its parameters, method, metric, limits and fixed arguments."""

    path: Path
    raw: dict[str, Any]
    name: str
    method: str
    metric: str
    goal: str
    space: dict[str, Parameter]
    fixed_args: list[str]
    run_cap: int | None = None
    early_terminate: dict[str, Any] | None = None

    @property
    def parameters(self) -> dict[str, list[Any]]:
        """Name -> values of a grid (every parameter a list of values)."""
        return {name: list(p.values) for name, p in self.space.items()}

    def points(self) -> list[dict[str, Any]]:
        """The grid, in the order of the file's parameters (the last one varies fastest)."""
        keys = list(self.parameters)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*self.parameters.values())
        ]

    @property
    def varying(self) -> list[str]:
        return [k for k, p in self.space.items() if not p.fixed]

    @property
    def fixed_point(self) -> dict[str, Any]:
        return {k: p.values[0] for k, p in self.space.items() if p.fixed}

    @property
    def searched(self) -> bool:
        """Whether the search engine runs it (a method other than grid, or early termination);
        a plain grid runs as a campaign of its points."""
        return self.method != "grid" or self.early_terminate is not None


def load_sweep(path: str | Path, executor: str = "local") -> Sweep:
    """Read and check a sweep file before anything runs; errors name the key."""
    path = Path(path)
    raw = read_yaml(path, "a sweep file (YAML)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a sweep: it must be a mapping with 'parameters'")
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError(f"{path} is not a sweep: 'parameters' is missing or empty")
    method = raw.get("method")
    if method not in ("grid", "random", "bayes"):
        raise ConfigError(f"{path}: 'method' must be grid, random or bayes, got {method!r}")
    run_cap = raw.get("run_cap")
    if run_cap is not None and not (isinstance(run_cap, int) and run_cap >= 1):
        raise ConfigError(f"{path}: 'run_cap' must be an integer >= 1, got {run_cap!r}")
    early = raw.get("early_terminate")
    if early is not None:
        early = check_early_terminate(path, early)
    metric = raw.get("metric") or {}
    if not isinstance(metric, dict) or "name" not in metric:
        raise ConfigError(f"{path}: 'metric' needs a 'name' (e.g. train/accuracy)")
    goal = metric.get("goal", "minimize")
    if goal not in ("maximize", "minimize"):
        raise ConfigError(f"{path}: 'metric.goal' must be maximize or minimize, got {goal!r}")

    space: dict[str, Parameter] = {}
    for name, spec in parameters.items():
        if by_name(TrainConfig, str(name)) is None:
            raise ConfigError(
                f"{path}: parameter {name!r} is not a flag of binary_nn.train "
                f"(see python -m binary_nn.train --help)"
            )
        parameter = parse_parameter(str(name), spec, str(path))
        check_with_option(path, by_name(TrainConfig, str(name)), parameter)
        if method == "grid" and parameter.distribution != "categorical":
            raise ConfigError(
                f"{path}: parameter {name!r}: a grid needs 'value' or 'values'; distributions "
                "are for method random or bayes"
            )
        space[str(name)] = parameter
    return Sweep(
        path,
        raw,
        str(raw.get("name") or path.stem),
        method,
        metric["name"],
        goal,
        space,
        _fixed_args(path, raw.get("command")),
        run_cap,
        early,
    )


def check_with_option(path: Path, option: Any, parameter: Any) -> None:
    """Every value a parameter can take (its values, or its range's ends) through its option's
    own check, so that ``lr: {min: -1, ...}`` is refused before a run starts, naming it."""
    if option is None or option.check is None:
        return
    ends = parameter.values if parameter.values else (parameter.low, parameter.high)
    for value in ends:
        try:
            option.check(value, option.label)
        except ConfigError as exc:
            raise ConfigError(f"{path}: parameter {parameter.name!r}: {exc}") from None


def _whole(path: Path, spec: dict[str, Any], key: str, low: int, high: int) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{path}: early_terminate {key!r} must be a whole number in {low}..{high}, got "
            f"{value!r}"
        )
    return value


def check_early_terminate(path: Path, spec: Any) -> dict[str, Any]:
    """W&B's ``early_terminate``: ``type: hyperband`` with ``min_iter`` (or ``max_iter`` and
    ``s``) and ``eta`` (default 3); iterations are epochs here."""
    if not isinstance(spec, dict) or spec.get("type") != "hyperband":
        raise ConfigError(f"{path}: 'early_terminate' must have type: hyperband")
    eta = spec.get("eta", 3)
    if isinstance(eta, bool) or not (isinstance(eta, int) and 2 <= eta <= 100):
        raise ConfigError(f"{path}: early_terminate 'eta' must be an integer >= 2, got {eta!r}")
    if "min_iter" in spec:
        low = _whole(path, spec, "min_iter", 1, MAX_EPOCHS)
    elif "max_iter" in spec and "s" in spec:
        low = _whole(path, spec, "max_iter", 1, MAX_EPOCHS) / eta ** _whole(path, spec, "s", 0, 50)
    else:
        raise ConfigError(f"{path}: early_terminate needs 'min_iter', or 'max_iter' and 's'")
    if not (isinstance(low, (int, float)) and low >= 1):
        raise ConfigError(f"{path}: early_terminate's first bracket must be >= 1 epoch")
    return {"min_iter": round(low), "eta": float(eta)}


def _fixed_args(path: Path, command: Any) -> list[str]:
    """The arguments of ``command`` after the entry point, without W&B's macros."""
    if command is None:
        raise ConfigError(
            f"{path}: 'command' is missing; it must run -m binary_nn.train with {ARGS_MACRO}"
        )
    if not isinstance(command, list):
        raise ConfigError(f"{path}: 'command' must be a list")
    items = [str(c) for c in command if str(c) not in DROPPED_MACROS]
    for entry in ENTRY_POINTS:
        for start in range(len(items) - len(entry) + 1):
            if tuple(items[start : start + len(entry)]) == entry:
                rest = items[start + len(entry) :]
                if ARGS_MACRO not in rest:
                    raise ConfigError(
                        f"{path}: 'command' must pass the point's flags with "
                        f"{ARGS_MACRO} (boolean flags such as --bn take no value)"
                    )
                others = [c for c in rest if c.startswith("${") and c != ARGS_MACRO]
                if others:
                    raise ConfigError(f"{path}: 'command' uses {others[0]}; use {ARGS_MACRO}")
                return [c for c in rest if c != ARGS_MACRO]
    raise ConfigError(f"{path}: 'command' must run '-m binary_nn.train' (or 'binary-nn')")
