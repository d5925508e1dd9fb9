"""``python -m binary_nn.runs [DIR]``: the runs under a directory, one line each.

Time, status (``completed``, ``diverged``, ``running`` while another process writes it,
``failed`` with an ``error.json``, ``incomplete`` when it was stopped), dataset, rule, weights,
activation, architecture, epochs, last and best test accuracy and duration; ``--json FILE``
writes the same rows.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cli import ArgumentParser, describe, run_cli
from ..errors import ConfigError
from ..files import write_text_atomic
from ..run.run_dir import CONFIG_FILE, LOCK_FILE, SUMMARY_FILE

PROG = "binary_nn.runs"
COLUMNS = (
    "time", "status", "dataset", "rule", "weights", "activation", "architecture", "epochs",
    "last test acc", "best test acc", "duration s", "run dir",
)  # fmt: skip


def _being_written(run_dir: Path) -> bool:
    try:
        with open(run_dir / LOCK_FILE) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One row per run directory under ``root`` (any depth), oldest first."""
    rows = []
    for config_path in sorted(root.rglob(CONFIG_FILE)):
        run_dir = config_path.parent
        config, summary = _read(config_path), _read(run_dir / SUMMARY_FILE)
        if "method" not in config:
            continue
        if summary.get("status"):
            status = summary["status"]
        elif _being_written(run_dir):
            status = "running"
        elif (run_dir / "error.json").is_file():
            status = "failed"
        else:
            status = "incomplete"
        rows.append(
            {
                "time": datetime.fromtimestamp(config_path.stat().st_mtime).isoformat(
                    " ", "minutes"
                ),
                "status": status,
                "dataset": config.get("dataset"),
                "rule": config.get("method"),
                "weights": config.get("weights")
                or ("binarised" if config.get("binarize") else "continuous"),
                "activation": config.get("hidden_act"),
                "architecture": config.get("architecture"),
                "epochs": f"{summary.get('epochs_completed', '?')}/{config.get('epochs')}",
                "last test acc": summary.get("test/accuracy"),
                "best test acc": summary.get("best/test/accuracy"),
                "duration s": summary.get("time/total"),
                "run dir": str(run_dir),
            }
        )
    return sorted(rows, key=lambda row: row["time"])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1 else f"{value:.1f}"
    return "-" if value is None else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument(
        "directory", nargs="?", default="runs", help="where to look (default: runs)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")

    def job() -> int:
        args = parser.parse_args(argv)
        root = Path(args.directory)
        if not root.is_dir():
            raise ConfigError(f"{root} is not a directory of runs")
        rows = list_runs(root)
        if args.json:
            write_text_atomic(Path(args.json), json.dumps(rows, indent=2) + "\n")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
        print(f"{len(rows)} runs under {root}")
        return 0

    return run_cli(PROG, job)
