"""How the benchmarks time things on a shared machine whose speed drifts by up to 70% within
minutes: what is compared takes turns (the order reversed every other turn), every ratio is
formed within a turn (paired) before its median is taken, and a spread is the median with the
range over the turns."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds of one call."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def taking_turns(functions: Mapping[str, Callable[[], Any]], turns: int) -> dict[str, list[float]]:
    """Seconds of each function per turn, the functions called back to back in each turn (in
    reverse order every other turn)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    for turn in range(turns):
        for name in names if turn % 2 else names[::-1]:
            times[name].append(timed(functions[name]))
    return times


def paired(numerator: list[float], denominator: list[float]) -> list[float]:
    """Ratios of values measured in the same turn."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def spread(values: list[float], digits: int = 2, scale: float = 1.0) -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    v = [x * scale for x in values]
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"
