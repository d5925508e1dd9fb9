"""Options declared once: a dataclass field carries its flags, help, group, check and role.

A configuration class (``TrainConfig``) declares each option as a
field made by ``option``. Everything else derives from those fields:

- ``build_parser``: the argparse parser, its options grouped (``--help``);
- ``validate``: each option's check, which also gives its canonical value, then the
  rules between options (``Needs``);
- ``command_line``: the flags that reproduce a configuration;
- ``by_name``: the sweep files' parameter check (a parameter is an option's name);
- ``identity_keys`` and ``result_keys``: what makes two runs the same run (campaigns
  refuse to mix them) and what makes them comparable (the report's sections).

A new option is one field.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .cli import ArgumentParser
from .errors import ConfigError
from .registry import Registry

#: the groups of ``--help``, in order
GROUPS = {
    "data": "data",
    "model": "model (the network)",
    "learning": "learning (rule, optimizer, loss)",
    "run": "run (length, seed, files)",
    "logging": "logging and measurements",
}

#: ``result``: changes what a run computes (its weights, its scores); ``measurement``: changes
#: what is measured or how, not the trajectory; ``io``: where things go, how much is printed
Effect = Literal["result", "measurement", "io"]
#: takes a value and the flag's label (for the message); returns the canonical value
Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Needs:
    """An option that only acts together with another setting: when the option is set (its
    value differs from the default), ``met`` (of the whole, canonical configuration) must
    hold; ``other`` names that setting in the message."""

    other: str
    met: Callable[[Any], bool]


@dataclass(frozen=True)
class Option:
    """One option of a configuration class; see ``option``."""

    flags: tuple[str, ...]
    help: str
    group: str
    check: Check | None = None
    kind: Literal["value", "flag", "switch", "count"] = "value"
    metavar: str | None = None
    effect: Effect = "result"
    needs: tuple[Needs, ...] = ()

    @property
    def flag(self) -> str:
        """The canonical long flag (``--method``)."""
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def label(self) -> str:
        """How messages name it: ``-m/--method``."""
        return "/".join(self.flags[:2]) if self.flags[0].startswith("-") else self.flag


def option(
    default: Any,
    *flags: str,
    help: str,
    group: str,
    check: Check | None = None,
    kind: Literal["value", "flag", "switch", "count"] = "value",
    metavar: str | None = None,
    effect: Effect = "result",
    needs: Sequence[Needs] = (),
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is a command-line option.

    Parameters
    ----------
    default : object
        The value without the flag (what the published code does).
    *flags : str
        ``"-m", "--method"``; the first long one is canonical.
    help : str
        One line for ``--help``.
    group : str
        A key of ``GROUPS``.
    check : callable, optional
        Takes a value (from the command line: a string) and returns the canonical value, or
        raises ``ConfigError`` in one sentence naming the flag (see
        ``integer``, ``number``, ``one_of``, ``registered``).
    kind : {"value", "flag", "switch", "count"}
        ``flag`` is a boolean that its flag turns on; ``switch`` one with a ``--no-`` form
        too (for a default of True); ``count`` a repeatable flag (``-vv``).
    effect : {"result", "measurement", "io"}
        See ``Effect``.
    needs : sequence of Needs
        Other options this one needs; refused otherwise, naming both.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    meta = Option(tuple(flags), help, group, check, kind, metavar, effect, tuple(needs))
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"option": meta})
    return field(default=default, metadata={"option": meta})


def options_of(cls: type) -> dict[str, Option]:
    """Field name -> ``Option`` for every option field of a configuration class."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


def by_name(cls: type, name: str) -> Option | None:
    """The option called ``name`` (a field name, or a flag without its dashes, either
    spelling of the separator), or None."""
    options = options_of(cls)
    key = name.replace("-", "_")
    if key in options:
        return options[key]
    for opt in options.values():
        if f"--{name}" in opt.flags:
            return opt
    return None


def identity_keys(cls: type) -> list[str]:
    """Options that make a run what it is: a campaign refuses to reuse a run directory made
    with other values of these."""
    return [name for name, opt in options_of(cls).items() if opt.effect != "io"]


def result_keys(cls: type) -> list[str]:
    """Options that change what a run computes: runs comparable in a table agree on these
    (all but the ones the table itself varies)."""
    return [name for name, opt in options_of(cls).items() if opt.effect == "result"]


# --- checks: each returns the canonical value or raises one sentence -----------------------


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ValueError
    number = kind(value)
    if kind is int and not isinstance(value, int) and float(value) != number:
        raise ValueError
    return number


def integer(low: int | None = None, high: int | None = None, *, allowed: str = "") -> Check:
    """An integer in ``[low, high]`` (either end open when None)."""

    def check(value: Any, flag: str = "") -> int:
        try:
            number = _number(value, int)
        except (TypeError, ValueError, OverflowError):
            number = None
        if (
            number is None
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            raise ConfigError(f"{flag} must be {allowed or _range('an integer', low, high)}, "
                              f"got {value!r}")  # fmt: skip
        return number

    return check


def number(
    low: float | None = None,
    *,
    above: bool = True,
    high: float | None = None,
    below: bool = True,
    allowed: str = "",
) -> Check:
    """A finite number, ``> low`` (``above``) or ``>= low``, and ``< high`` (``below``) or
    ``<= high``; an open end where a bound is None."""

    def check(value: Any, flag: str = "") -> float:
        try:
            result = float(_number(value, float))
        except (TypeError, ValueError, OverflowError):
            result = math.nan
        valid = (
            math.isfinite(result)
            and (low is None or (result > low if above else result >= low))
            and (high is None or (result < high if below else result <= high))
        )
        if not valid:
            if low is not None and high is not None:
                bound = f" in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
            elif low is not None:
                bound = f" {'>' if above else '>='} {low:g}"
            else:
                bound = ""
            raise ConfigError(f"{flag} must be {allowed or 'a finite number' + bound}, "
                              f"got {value!r}")  # fmt: skip
        return result

    return check


def _range(what: str, low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{what} in {low}..{high}"
    if low is not None:
        return f"{what} >= {low}"
    return what


def one_of(*choices: str) -> Check:
    """One of fixed words (case-insensitive); the canonical spelling is the listed one."""

    def check(value: Any, flag: str = "") -> str:
        for choice in choices:
            if str(value).lower() == choice.lower():
                return choice
        raise ConfigError(f"unknown {flag} {value!r}; choose one of: {', '.join(choices)}")

    return check


def registered(registry: Registry[Any]) -> Check:
    """A name (or alias) of a registry; the canonical value is the registered name."""

    def check(value: Any, flag: str = "") -> str:
        return registry.canonical(str(value))

    return check


def optional(check: Check) -> Check:
    """``check``, or None for None."""

    def wrapped(value: Any, flag: str = "") -> Any:
        return None if value is None else check(value, flag)

    return wrapped


def text(value: Any, flag: str = "") -> str | None:
    return None if value is None else str(value)


def boolean(value: Any, flag: str = "") -> bool:
    """True/False, or their usual spellings in a file (``true``, ``1``, ``yes``...)."""
    if isinstance(value, bool):
        return value
    folded = str(value).strip().lower()
    if folded in ("true", "1", "yes", "on"):
        return True
    if folded in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{flag} is a switch: true or false, got {value!r}")


#: the largest layer size a list of sizes may name (far past any memory: the memory check
#: refuses what does not fit; this keeps the arithmetic of the shapes finite)
MAX_SIZE = 10**9


def int_list(value: Any, flag: str = "") -> tuple[int, ...]:
    """``"700,500"`` (or a list) -> ``(700, 500)``: positive integers up to ``MAX_SIZE``."""
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split(",")
    if (
        not items
        or not all(re.fullmatch(r"\s*[0-9]{1,12}\s*", item) for item in items)
        or any(not 1 <= int(item) <= MAX_SIZE for item in items)
    ):
        raise ConfigError(
            f"{flag} must be a comma-separated list of positive integers up to {MAX_SIZE:,} "
            f"such as 700,500, got {str(value)[:60]!r}"
        )
    return tuple(int(item) for item in items)


# --- what derives from the table -----------------------------------------------------------


def validate(config: Any) -> dict[str, Any]:
    """The canonical value of every option of ``config`` (a dataclass instance), each checked;
    then every ``Needs`` of an option that is set. Raises the first problem found."""
    values: dict[str, Any] = {}
    for name, opt in options_of(type(config)).items():
        value = getattr(config, name)
        if opt.check is not None:
            value = opt.check(value, opt.label)
        elif opt.kind in ("flag", "switch"):
            value = boolean(value, opt.label)
        values[name] = value
    canonical = dataclasses.replace(config, **values)
    default = type(config)()
    for name, opt in options_of(type(config)).items():
        if values[name] == getattr(default, name):
            continue
        for need in opt.needs:
            if not need.met(canonical):
                raise ConfigError(f"{opt.label} needs {need.other}; add it or leave {opt.flag} out")
    return values


def build_parser(
    cls: type,
    prog: str,
    description: str,
    groups: Iterable[str] | None = None,
    epilog: str | None = None,
    given_only: bool = False,
) -> argparse.ArgumentParser:
    """The parser of ``cls``'s options (only those of ``groups`` when given), grouped as
    ``GROUPS``; every value arrives as given (strings), for ``validate`` to check.
    With ``given_only``, options not on the command line are left out of the result (what a
    command line sets, as opposed to what it leaves to the defaults)."""
    parser = ArgumentParser(prog=prog, description=description, epilog=epilog)
    if given_only:
        parser.argument_default = argparse.SUPPRESS
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    sections: dict[str, Any] = {}
    wanted = set(GROUPS if groups is None else groups)
    for name, opt in options_of(cls).items():
        if opt.group not in wanted:
            continue
        if opt.group not in sections:
            sections[opt.group] = parser.add_argument_group(GROUPS[opt.group])
        f = defaults[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"dest": name, "help": opt.help}
        if opt.kind == "flag":
            kwargs.update(action="store_true", default=default)
        elif opt.kind == "switch":
            kwargs.update(action=argparse.BooleanOptionalAction, default=default)
        elif opt.kind == "count":
            kwargs.update(action="count", default=default)
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            kwargs.update(default=shown, metavar=opt.metavar)
        if given_only:
            kwargs["default"] = argparse.SUPPRESS
        sections[opt.group].add_argument(*opt.flags, **kwargs)
    return parser


def parsed_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The options a parser made by ``build_parser`` read from ``argv``."""
    return vars(parser.parse_args(list(argv)))


def command_line(config: Any, program: Sequence[str]) -> str:
    """``program`` followed by the flags of every option of ``config`` that differs from the
    default (a command that rebuilds it), in declaration order."""
    default = type(config)()
    words = list(program)
    for name, opt in options_of(type(config)).items():
        value = getattr(config, name)
        if opt.effect == "io" and opt.kind == "count":
            continue
        if value == getattr(default, name):
            continue
        if opt.kind == "flag":
            if value:
                words.append(opt.flag)
        elif opt.kind == "switch":
            words.append(opt.flag if value else "--no-" + opt.flag.removeprefix("--"))
        elif isinstance(value, (list, tuple)):
            words += [opt.flag, ",".join(map(str, value))]
        elif value is not None:
            words += [opt.flag, str(value)]
    return shlex.join(words)
