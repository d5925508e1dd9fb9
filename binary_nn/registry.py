"""A small name -> object registry, so that a CLI flag maps to a table rather than an if-chain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

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

    def __init__(self, kind: str, flag: str | None = None) -> None:
        self.kind = kind
        self.flag = flag
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, obj: T, *aliases: str) -> None:
        for key in (name, *aliases):
            folded = key.lower()
            if folded in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._aliases[folded] = name
        self._entries[name] = obj

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (any case, or an alias) stands for."""
        try:
            return self._aliases[str(name).lower()]
        except KeyError:
            where = f" for {self.flag}" if self.flag else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{where}; choose one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        """The object registered under ``name``; a :class:`ConfigError` lists the known names."""
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
