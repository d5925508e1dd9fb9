"""``python -m binary_nn.runs [DIR]``: the runs under a directory, one line each.

Status (``completed``, ``stopped`` — resumable with ``train --resume``, ``diverged``,
``failed`` with an ``error.json``, ``running`` while another process writes it), dataset,
rule, weights, activation, epochs done, the best epoch's accuracy (on validation when the run
held some out, marked ``val``; else on test, as the published study) and its test accuracy.
The table fits 100 columns; ``--wide`` adds the architecture, optimizer, duration and time.
``--dataset``, ``--method`` and ``--status`` filter; ``--json FILE`` writes every field.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cli import ArgumentParser, describe, run_cli
from ..data import DATASETS
from ..errors import ConfigError
from ..files import check_writable, read_json_object, write_text_atomic
from ..learning.rules import RULES
from ..run.run_dir import CONFIG_FILE, SUMMARY_FILE, being_written, run_files_damage

PROG = "binary_nn.runs"
STATUSES = (
    "completed", "stopped", "terminated", "diverged", "failed", "running", "incomplete", "damaged",
)  # fmt: skip
NARROW = ("status", "dataset", "rule", "weights", "act", "epochs", "best", "test acc", "run dir")
WIDE = (
    "time", "status", "dataset", "rule", "weights", "act", "optimizer", "architecture",
    "epochs", "best", "test acc", "best test acc", "duration s", "run dir",
)  # fmt: skip


def _status(run_dir: Path, summary: dict[str, Any]) -> str:
    if being_written(run_dir):
        return "running"
    if summary.get("status") in STATUSES:
        return str(summary["status"])
    return "failed" if (run_dir / "error.json").is_file() else "incomplete"


def _best(summary: dict[str, Any]) -> str | float | None:
    value = summary.get("best/val/accuracy")
    if summary.get("best/metric") == "val/accuracy" and isinstance(value, float):
        return f"{value:.4f} val"
    return summary.get("best/test/accuracy")


def list_runs(root: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """One row per run directory under ``root`` (any depth), oldest first; and the
    directories whose ``config.json`` could not be read."""
    rows, unreadable = [], []
    for config_path in sorted(root.rglob(CONFIG_FILE)):
        run_dir = config_path.parent
        config = read_json_object(config_path)
        if config is None or "method" not in config:
            unreadable.append(run_dir)
            continue
        summary = read_json_object(run_dir / SUMMARY_FILE) or {}
        if run_files_damage(config, summary) is not None:  # listed, its numbers not shown
            summary = {"status": "damaged", "epochs_completed": summary.get("epochs_completed")}
        weights = "binary" if config.get("binarize") else "real"
        rows.append(
            {
                "time": datetime.fromtimestamp(config_path.stat().st_mtime).isoformat(
                    " ", "minutes"
                ),
                "status": _status(run_dir, summary),
                "dataset": config.get("dataset"),
                "rule": config.get("method"),
                "weights": weights,
                "act": config.get("hidden_act"),
                "optimizer": config.get("optimizer", "sgd"),
                "architecture": config.get("architecture"),
                "epochs": f"{summary.get('epochs_completed', 0)}/{config.get('epochs')}",
                "best": _best(summary),
                "test acc": summary.get("test/accuracy"),
                "best test acc": summary.get("best/test/accuracy"),
                "duration s": summary.get("time/total"),
                "run dir": str(run_dir),
            }
        )
    return sorted(rows, key=lambda row: row["time"]), unreadable


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return "-" if value is None else str(value)


def _dataset(name: object) -> str:
    return DATASETS.canonical(str(name)) if name in DATASETS else str(name).lower()


def _matches(
    row: dict[str, Any], dataset: str | None, method: str | None, status: str | None
) -> bool:
    if dataset and _dataset(row["dataset"]) != _dataset(dataset):
        return False
    if method and row["rule"] != method:
        return False
    return not status or row["status"] == status


def table(rows: list[dict[str, Any]], columns: Sequence[str], width: int | None) -> list[str]:
    """Markdown lines; with ``width``, the run directories are shortened from the left so
    that each line fits."""
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    if width is not None and "run dir" in columns:
        k = list(columns).index("run dir")
        for line in cells:
            others = sum(len(c) + 3 for j, c in enumerate(line) if j != k) + 4
            room = max(12, width - others)
            if len(line[k]) > room:
                line[k] = "..." + line[k][-(room - 3) :]
    header = "| " + " | ".join(columns) + " |"
    return [header, "|" + "---|" * len(columns), *("| " + " | ".join(c) + " |" for c in cells)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument(
        "directory", nargs="?", default="runs", help="where to look (default: runs)"
    )
    parser.add_argument("--wide", action="store_true", help="every column, however wide")
    parser.add_argument("--dataset", help="only runs on this dataset")
    parser.add_argument("--method", help="only runs of this rule (GD, BP, DFA, DRTP)")
    parser.add_argument("--status", choices=STATUSES, help="only runs with this status")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")

    def job() -> int:
        args = parser.parse_args(argv)
        root = Path(args.directory)
        if not root.is_dir():
            raise ConfigError(f"{root} is not a directory of runs")
        if args.json:
            check_writable(args.json, "--json")
        method = RULES.canonical(args.method) if args.method else None
        rows, unreadable = list_runs(root)
        shown = [r for r in rows if _matches(r, args.dataset, method, args.status)]
        if args.json:
            write_text_atomic(Path(args.json), json.dumps(shown, indent=2) + "\n")
        columns = WIDE if args.wide else NARROW
        width = None if args.wide else min(100, shutil.get_terminal_size((100, 24)).columns)
        print("\n".join(table(shown, columns, width)))
        filtered = f" ({len(rows) - len(shown)} filtered out)" if len(shown) < len(rows) else ""
        print(f"{len(shown)} runs under {root}{filtered}")
        if unreadable:
            names = ", ".join(str(p) for p in unreadable[:3])
            print(f"{len(unreadable)} run directories with an unreadable config.json: {names}")
        return 0

    return run_cli(PROG, job)
