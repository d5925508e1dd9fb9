"""Fields of a JSON object read back from a file, each taken with its type and range checked.

What binary_nn wrote itself (a checkpoint's progress, a run's summary) comes back through
``Record`` so that a damaged or tampered file ends in one sentence naming the file, the
field and what to do, never in a ``TypeError`` far from the read::

    record = Record(json.loads(text), "runs/a/checkpoint.npz (its progress)", remedy)
    epoch = record.integer("epoch", low=0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: how ``binary_nn.files.jsonable`` writes the floats JSON cannot hold
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
#: a field without a default must be present
_REQUIRED: Any = object()


class Record:
    """A JSON object (a ``dict``) whose fields are read with checks.

    Parameters
    ----------
    data : object
        What was parsed; anything but a ``dict`` is refused at once.
    where : str
        The file (and part of it) the messages name.
    remedy : str
        What the person should do when the file is damaged (ends each message).
    """

    def __init__(self, data: Any, where: str, remedy: str) -> None:
        self.where, self.remedy = where, remedy
        if not isinstance(data, dict):
            raise self.error(f"holds {type(data).__name__} where an object belongs")
        self.data: dict[str, Any] = data

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.where} {problem}; {self.remedy}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise self.error(f"has no {key!r}")
        return default

    def _bad(self, key: str, value: Any, expected: str) -> ConfigError:
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        return self.error(f"holds {key} = {shown}, not {expected}")

    def integer(
        self, key: str, low: int | None = 0, high: int | None = None, default: Any = _REQUIRED
    ) -> int:
        """An ``int`` (not a bool, not a float) in ``[low, high]``."""
        value = self._get(key, default)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not (ok and (low is None or value >= low) and (high is None or value <= high)):
            bounds = "" if low is None and high is None else f" in {low}..{high or ''}"
            raise self._bad(key, value, "an integer" + bounds)
        return int(value)

    def number(
        self,
        key: str,
        low: float | None = None,
        finite: bool = True,
        default: Any = _REQUIRED,
    ) -> float:
        """A finite ``float`` (an ``int`` is taken too) at least ``low``; with
        ``finite=False``, also the strings ``"inf"``, ``"-inf"`` and ``"nan"`` that binary_nn
        writes for them."""
        value = self._get(key, default)
        if not finite and isinstance(value, str) and value in NON_FINITE:
            return NON_FINITE[value]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, value, "a number")
        number = float(value)
        if finite and not math.isfinite(number):
            raise self._bad(key, value, "a finite number")
        if low is not None and not number >= low:
            raise self._bad(key, value, f"a number >= {low}")
        return number

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, value, "true or false")
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, value, "a string")
        return value

    def mapping(self, key: str, default: Any = _REQUIRED) -> dict[str, Any]:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._bad(key, value, "an object")
        return value

    def record(self, key: str) -> Record:
        """The object under ``key``, as a ``Record`` of its own."""
        return Record(self.mapping(key), f"{self.where} (its {key})", self.remedy)

    def items(
        self, key: str, check: Callable[[Any], bool], what: str, default: Any = _REQUIRED
    ) -> list[Any]:
        """A list whose every item passes ``check`` (``what`` names one in the message)."""
        value = self._get(key, default)
        if not isinstance(value, list) or not all(check(item) for item in value):
            raise self._bad(key, value, f"a list of {what}")
        return value
