"""A small name -> object registry, so that a CLI flag maps to a table rather than an if-chain;
entries may come from other installed packages through a Python entry-point group."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects looked up by a case-insensitive name or alias.

    Parameters
    ----------
    kind : str
        What the entries are ("activation", "learning rule", ...), used in error messages.
    flag : str, optional
        The command-line flag that selects an entry, named in error messages.
    """

    def __init__(
        self,
        kind: str,
        flag: str | None = None,
        entry_points: str | None = None,
        check: Callable[[Any], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.flag = flag
        self._entries: dict[str, T | EntryPoint] = {}
        self._aliases: dict[str, str] = {}
        #: the entry-point group whose entries (name -> object) are added on first use, each
        #: loaded when it is first asked for and then checked with ``check``
        self.group = entry_points
        self._check = check
        self._discovered = entry_points is None

    def add(self, name: str, obj: T, *aliases: str) -> None:
        for key in (name, *aliases):
            folded = key.lower()
            if folded in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._aliases[folded] = name
        self._entries[name] = obj

    def _discover(self) -> None:
        """The group's entry points, once (a built-in name keeps its built-in entry)."""
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for point in entry_points(group=str(self.group)):
            if point.name.lower() not in self._aliases:
                self._aliases[point.name.lower()] = point.name
                self._entries[point.name] = point

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (any case, or an alias) stands for."""
        self._discover()
        try:
            return self._aliases[str(name).lower()]
        except KeyError:
            where = f" for {self.flag}" if self.flag else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{where}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        """The object registered under ``name``; a ``ConfigError`` lists the known names,
        or says why another package's entry cannot be used."""
        key = self.canonical(name)
        entry = self._entries[key]
        if isinstance(entry, EntryPoint):
            package = entry.dist.name if entry.dist is not None else entry.value
            try:
                loaded = entry.load()
            except Exception as exc:  # another package's code: any error is its own
                raise ConfigError(
                    f"the {self.kind} {key!r} of the package {package} could not be loaded "
                    f"({type(exc).__name__}: {exc}); fix or uninstall that package"
                ) from None
            if self._check is not None and not self._check(loaded):
                raise ConfigError(
                    f"the {self.kind} {key!r} of the package {package} ({entry.value}) is not "
                    f"a {self.kind} binary_nn can use; see the guide to writing one"
                )
            self._entries[key] = entry = loaded
        return entry

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return isinstance(name, str) and name.lower() in self._aliases

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(self._entries)
