"""A sweep's point as a W&B agent passes it to ``train``, and as a run directory name."""

from __future__ import annotations

import re
from typing import Any

from ..options import by_name
from ..run.config import TrainConfig


def point_args(point: dict[str, Any]) -> list[str]:
    """The agent's ``${args_no_boolean_flags}`` for one point (a false switch whose default
    is true, such as ``binarize_first``, as its ``--no-`` form)."""
    args = []
    for name, value in point.items():
        if isinstance(value, bool):
            opt = by_name(TrainConfig, name)
            if value:
                args.append(f"--{name}")
            elif opt is not None and opt.kind == "switch":
                args.append(f"--no-{name}")
        else:
            args.append(f"--{name}={value}")
    return args


def point_name(point: dict[str, Any], varying: list[str]) -> str:
    """A directory name from the point's varying parameters, e.g. ``method-DFA_lr-1e-05``."""
    parts = [f"{k}-{point[k]}" for k in varying] or ["point"]
    return re.sub(r"[^A-Za-z0-9._=-]", "_", "_".join(parts))
