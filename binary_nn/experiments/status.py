"""Where each run of a campaign stands, read from its directory (``repeat --status``).

A campaign that runs across sessions (twenty epochs of a convnet take an hour and more on two
cores) is followed by this table: each run's state, how many epochs its ``metrics.jsonl``
holds, and the epoch selected so far (on ``val/accuracy`` when the run holds a validation
split out, else its last) with that epoch's validation and test accuracy. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..run.run_dir import METRICS_FILE, being_written, finished_summary
from .jobs import Job
from .reporting.load import records_with


@dataclass
class RunStatus:
    """One run's row of the table."""

    name: str
    state: str  # not started, stopped, running, or the summary's status
    epochs: int
    total: int
    selected: int | None
    val: float | None
    test: float | None


def run_status(job: Job) -> RunStatus:
    """Where ``job``'s run directory stands now."""
    run_dir = job.run_dir
    summary = finished_summary(run_dir)
    if summary is not None:
        state = str(summary["status"])
    elif being_written(run_dir):
        state = "running"
    elif (run_dir / METRICS_FILE).is_file():
        state = "stopped"
    else:
        state = "not started"
    tested = records_with(str(run_dir), "test/accuracy")
    validated = [r for r in tested if "val/accuracy" in r]
    epochs = max((int(r["epoch"]) for r in tested), default=0)
    chosen: dict[str, Any] | None = None
    if validated:  # the first epoch of the best validation accuracy, as runs select it
        chosen = max(validated, key=lambda r: (r["val/accuracy"], -r["epoch"]))
    elif tested:
        chosen = max(tested, key=lambda r: r["epoch"])
    return RunStatus(
        job.name,
        state,
        epochs,
        job.config.epochs,
        None if chosen is None else int(chosen["epoch"]),
        None if chosen is None else chosen.get("val/accuracy"),
        None if chosen is None else float(chosen["test/accuracy"]),
    )


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def status_table(jobs: Sequence[Job]) -> str:
    """The markdown table of every job's ``run_status``."""
    lines = [
        "| run | state | epochs | selected epoch | val accuracy | test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for status in map(run_status, jobs):
        selected = "-" if status.selected is None else str(status.selected)
        lines.append(
            f"| {status.name} | {status.state} | {status.epochs} of {status.total} | {selected} "
            f"| {_shown(status.val)} | {_shown(status.test)} |"
        )
    return "\n".join(lines)
