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


def machine() -> dict[str, str]:
    """What a timing table was measured on: the CPU model, its widest vector extension, the
    BLAS library and the kernel it runs, the numba target CPU; timings compare only within one
    machine kind (an AVX-512 Intel and an AVX2 AMD differ by more than the changes measured)."""
    import os
    import platform

    facts = {"cpu": platform.processor() or platform.machine(), "vectors": "?"}
    try:
        with open("/proc/cpuinfo") as info:
            text = info.read()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("model name")), facts["cpu"])  # fmt: skip
        flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                          if ln.startswith("flags")), []))  # fmt: skip
        facts["cpu"] = f"{model}, {os.cpu_count()} cores"
        widest = [f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags]
        facts["vectors"] = (widest[0] if widest else "?") + (" + fma" if "fma" in flags else "")
    except OSError:
        pass
    try:
        import numpy  # noqa: F401 (loads the BLAS threadpoolctl reports)
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        facts["blas"] = (
            ", ".join(
                f"{i.get('internal_api')} {i.get('version')} "
                f"({i.get('architecture', '?')} kernels, {i.get('num_threads')} threads)"
                for i in blas
            )
            or "?"
        )
    except ImportError:
        facts["blas"] = "?"
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        facts["blas"] += f"; OPENBLAS_CORETYPE={coretype}"
    try:
        import llvmlite.binding as llvm
        import numba

        facts["numba"] = f"{numba.__version__}, target {llvm.get_host_cpu_name()}"
    except ImportError:
        facts["numba"] = "not installed"
    return facts


def machine_header() -> str:
    """:func:`machine` as the lines a table is printed under."""
    return "\n".join(f"{key}: {value}" for key, value in machine().items()) + "\n"
