"""The run configuration: one validated dataclass shared by the CLI, the API and the sweeps."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ..errors import ConfigError
from ..learning.rules import RULES
from ..nn.activations import ACTIVATIONS
from ..nn.network import parse_conv
from ..nn.quantizers import WEIGHT_STES

DTYPES = ("float32", "float64")


def parse_hidden(text: str | list | tuple) -> tuple[int, ...]:
    """``"700,500"`` -> ``(700, 500)``; anything but positive integers is a :class:`ConfigError`."""
    if isinstance(text, (list, tuple)):
        items = [str(v) for v in text]
    else:
        items = str(text).split(",")
    if not all(re.fullmatch(r"\s*[0-9]+\s*", item) for item in items) or any(
        int(item) < 1 for item in items
    ):
        raise ConfigError(
            f"--hidden must be a comma-separated list of positive integers such as 700,500, "
            f"got {text!r}"
        )
    return tuple(int(item) for item in items)


@dataclass
class TrainConfig:
    """Everything that defines a training run; field names follow the CLI flags.

    Defaults reproduce the published code (see SPEC.md). Call :meth:`resolved` to validate
    and canonicalise it (``BP`` -> ``GD``, a seed drawn when none is given).
    """

    method: str = "GD"
    dataset: str = "digits"
    epochs: int = 5
    batchsize: int = 128
    lr: float = 0.001
    hidden: tuple[int, ...] = (700, 500)
    conv: str = ""
    init: float = 0.1
    bn: bool = False
    sn: bool = False
    hidden_act: str = "tanh"
    last_act: str = "tanh"
    binarize: bool = False
    binarize_last: bool = False
    weight_clipping: float = 0.0
    weight_ste: str = "identity"
    seed: int | None = None
    dtype: str = "float32"
    data_dir: str | None = None
    run_name: str | None = None
    out: str | None = None
    overwrite: bool = False
    save: str | None = None
    load: str | None = None
    wandb: bool = False
    verbose: int = 0
    log_every: int = 1
    streaming: bool = False
    alignment_every: int | None = None
    alignment_examples: int = 512
    bn_recalibrate: int = 0
    argv: list[str] = field(default_factory=list)

    def resolved(self) -> TrainConfig:
        """A validated copy with canonical names and a concrete seed."""
        _check(self.epochs, "-e/--epochs", "an integer >= 1", lambda v: v >= 1, int)
        _check(self.batchsize, "-b/--batchsize", "an integer >= 1", lambda v: v >= 1, int)
        _check(self.lr, "--lr", "a finite number > 0", lambda v: 0 < v < np.inf, float)
        _check(self.init, "--init", "a finite number > 0", lambda v: 0 < v < np.inf, float)
        _check(self.weight_clipping, "--weight-clipping", "a number", np.isfinite, float)
        _check(self.log_every, "--log-every", "an integer >= 1", lambda v: v >= 1, int)
        if self.alignment_every is not None:
            _check(
                self.alignment_every, "--alignment-every", "an integer >= 0", lambda v: v >= 0, int
            )
        _check(
            self.alignment_examples,
            "--alignment-examples",
            "an integer >= 1",
            lambda v: v >= 1,
            int,
        )
        _check(self.bn_recalibrate, "--bn-recalibrate", "an integer >= 0", lambda v: v >= 0, int)
        if self.seed is not None:
            _check(self.seed, "--seed", "an integer in 0..2**32-1", lambda v: 0 <= v < 2**32, int)
        if self.dtype not in DTYPES:
            raise ConfigError(f"unknown --dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        parse_conv(self.conv)  # a malformed spec is refused before any work
        method = RULES.canonical(self.method)
        if self.streaming and not RULES.get(method).supports_streaming:
            raise ConfigError(
                f"--streaming works only with a rule whose updates need no output error "
                f"(-m DRTP), not -m {method}"
            )
        seed = self.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        return replace(
            self,
            method=method,
            hidden=parse_hidden(self.hidden),
            hidden_act=ACTIVATIONS.canonical(self.hidden_act),
            last_act=ACTIVATIONS.canonical(self.last_act),
            weight_ste=WEIGHT_STES.canonical(self.weight_ste),
            seed=seed,
        )

    @property
    def auto_name(self) -> str:
        """The name `--run-name auto` gives: "{METHOD} {binarised|continuous} {hidden_act}"."""
        weights = "binarised" if self.binarize else "continuous"
        return f"{self.method.upper()} {weights} {self.hidden_act}"

    @property
    def name(self) -> str | None:
        """The run name: ``--run-name``, with ``auto`` expanded; None when not given."""
        return self.auto_name if self.run_name == "auto" else self.run_name

    def command_line(self) -> str:
        """The ``python -m binary_nn.train`` command that runs this configuration (flags that
        differ from the defaults)."""
        import shlex

        default = TrainConfig()
        words = ["python", "-m", "binary_nn.train"]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("argv", "verbose") or value == getattr(default, f.name):
                continue
            flag = (
                "--binarize_last" if f.name == "binarize_last" else "--" + f.name.replace("_", "-")
            )
            if isinstance(value, bool):
                words.append(flag)
            elif isinstance(value, (list, tuple)):
                words += [flag, ",".join(map(str, value))]
            else:
                words += [flag, str(value)]
        return shlex.join(words)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        values = dict(data)
        if "hidden" in values:
            values["hidden"] = parse_hidden(values["hidden"])
        return cls(**values)


def _check(value, flag: str, allowed: str, ok, kind: type) -> None:
    try:
        number = kind(value)
        valid = (kind is float or float(value) == number) and bool(ok(number))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(f"{flag} must be {allowed}, got {value!r}")
