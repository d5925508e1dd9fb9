"""Loading runs for the report: run directories and W&B CSV exports as one table.

A row per finished run: the options that make its section (``SECTION``: every option that
changes what a run computes, but the ones a section's table varies), its triple
(``TRIPLE``), the grid point (``GRID``), the seed, and its scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...files import read_json_object
from ...learning.rules import RULES
from ...options import result_keys
from ...run.config import TrainConfig
from ...run.run_dir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, is_number, run_files_damage

#: what a section's table has a row for: (rule, activation, binary weights)
TRIPLE = ["method", "hidden_act", "binarize"]
#: what the grid search chooses per triple
GRID = ["init", "lr"]
#: a section of the report: runs that agree on every option that changes what they compute,
#: except the triple, the grid point and the seed (dataset and batch norm name the section)
SECTION = [
    "dataset",
    "bn",
    *(k for k in result_keys(TrainConfig) if k not in (*TRIPLE, *GRID, "seed", "dataset", "bn")),
]
SCORES = [
    "train/accuracy",
    "train/precision",
    "train/f1",
    "test/accuracy",
    "test/precision",
    "test/f1",
]
REQUIRED_CSV = [*TRIPLE, *GRID, "train/accuracy", "test/accuracy"]
#: what the grid search selects on: the published train/accuracy, or, when every run held out
#: a validation set, val/accuracy (never anything measured on the test set)
SELECT_ON = "train/accuracy"
SELECT_ON_VALIDATION = "val/accuracy"
BEST_TEST = "best/test/accuracy"


def algorithm_order(name: str) -> int:
    """A rule's place in tables and figures, as the rule declares it (the published layout
    first: DFA, DRTP, GD); an unknown name last."""
    try:
        return RULES.get(name).table_order
    except ConfigError:  # not a rule here (a CSV's), or another package's that cannot load
        return 99


ALIGN = "align/grad/0"


def section_value(value: Any) -> Any:
    """An option's value as a section key: lists as ``"a,b"``, nothing as ``"-"``."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return "-" if value is None or value == "" else value


def section_title(dataset: str, bn: bool) -> str:
    return f"{dataset} {'with' if bn else 'without'} Batch Normalization"


def section_description(key: tuple[Any, ...]) -> str:
    """The line under a section's title: its hidden layers and epochs, then every other
    option of the section that differs from the default."""
    values = dict(zip(SECTION, key, strict=True))
    default = TrainConfig()
    others = [
        f"{name} {value}"
        for name, value in values.items()
        if name not in ("dataset", "bn", "hidden", "epochs")
        and value != section_value(getattr(default, name))
    ]
    line = f"Hidden layers {values['hidden']}, {values['epochs']} epochs"
    return line + (f"; {', '.join(others)}" if others else "") + "."


def triple_label(row: Any) -> str:
    return f"{row['method']} {row['hidden_act']} {'bin' if row['binarize'] else 'real'}"


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(
            "the report needs pandas, matplotlib and scipy: pip install 'binary-nn[report]'"
        ) from None
    return pd


def _dataset_name(name: str) -> str:
    from ...data import DATASETS

    return DATASETS.canonical(name) if name in DATASETS else str(name)


def read_run_dirs(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of finished runs under ``root``, and the unfinished ones (killed or failed)."""
    rows, unfinished = [], []
    for config_path in sorted(root.rglob(CONFIG_FILE)):
        run_dir = config_path.parent
        config = read_json_object(config_path)
        if config is None:
            unfinished.append({"run_dir": str(run_dir), "reason": "unreadable config.json"})
            continue
        summary = read_json_object(run_dir / SUMMARY_FILE)
        if summary is None or summary.get("status") != "completed":
            error = run_dir / "error.json"
            status = (summary or {}).get("status")
            reasons = {
                "diverged": "diverged (its loss became NaN or infinite)",
                None: "incomplete (no summary.json)",
            }
            reason = "failed" if error.is_file() else reasons.get(status, str(status))
            unfinished.append({"run_dir": str(run_dir), "reason": reason})
            continue
        damage = run_files_damage(config, summary)
        if damage is not None:
            unfinished.append({"run_dir": str(run_dir), "reason": f"damaged ({damage})"})
            continue
        default = TrainConfig()
        row = {
            key: section_value(config.get(key, getattr(default, key)))
            for key in (*SECTION, *TRIPLE, *GRID, "seed")
        }
        row["dataset"] = _dataset_name(row["dataset"])
        row.update({k: summary.get(k) for k in (*SCORES, BEST_TEST, SELECT_ON_VALIDATION)})
        row["best/metric"] = summary.get("best/metric", "test/accuracy")
        row["status"] = summary.get("status")
        row["epochs_completed"] = summary.get("epochs_completed")
        n_train, batch = config.get("n_train"), config.get("batchsize")
        row["iterations_per_epoch"] = n_train // batch if n_train and batch else None
        row["architecture"] = config.get("architecture")
        row["cost"] = config.get("cost")
        row["run_dir"] = str(run_dir)
        rows.append(row)
    return rows, unfinished


def read_csv(path: Path) -> Any:
    """A W&B export: one row per run, config and summary columns under the names of the
    behaviour spec."""
    pd = _pandas()
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable CSV file ({exc})") from None
    missing = [c for c in REQUIRED_CSV if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{path} lacks the column(s) {', '.join(missing)}; a W&B export "
            f"needs {', '.join(REQUIRED_CSV)}"
        )
    frame = frame.copy()
    defaults = TrainConfig()
    columns: dict[str, Any] = {
        **{key: section_value(getattr(defaults, key)) for key in SECTION},
        "dataset": path.stem,
        "seed": 1,
        "status": "completed",
        "run_dir": "",
        "iterations_per_epoch": None,
        "architecture": "-",
        "cost": None,
    }
    for column, default in columns.items():
        if column not in frame.columns:
            frame[column] = default
    if BEST_TEST not in frame.columns:
        frame[BEST_TEST] = frame["test/accuracy"]
    for column, default in ((SELECT_ON_VALIDATION, float("nan")), ("best/metric", "test/accuracy")):
        if column not in frame.columns:
            frame[column] = default
    for column in SCORES:
        if column not in frame.columns:
            frame[column] = float("nan")
    frame["dataset"] = frame["dataset"].map(_dataset_name)
    return frame


def load(sources: Sequence[str]) -> Any:
    """All runs of the given directories and CSV files as one table, plus unfinished runs."""
    pd = _pandas()
    frames, unfinished = [], []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            rows, missing = read_run_dirs(path)
            frames.append(pd.DataFrame(rows))
            unfinished += missing
        elif path.is_file() and path.suffix.lower() == ".csv":
            frames.append(read_csv(path))
        else:
            raise ConfigError(f"{source} is neither a run directory nor a .csv file")
    frame = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else pd.DataFrame()
    )
    if frame.empty:
        raise ConfigError(
            f"no completed runs found in {', '.join(sources)}"
            + (f" ({unfinished_counts(unfinished)})" if unfinished else "")
        )
    for column in ("architecture", "hidden", "conv"):  # as text: "-" where runs lack them
        frame[column] = frame[column].fillna("-").astype(str) if column in frame else "-"
    frame["bn"] = frame["bn"].astype(bool)
    frame["binarize"] = frame["binarize"].astype(bool)
    frame["method"] = frame["method"].astype(str).str.upper().replace({"BP": "GD"})
    return frame, unfinished


def records_with(run_dir: str, key: str) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` that hold ``key``."""
    path = Path(run_dir) / METRICS_FILE
    if not (run_dir and path.is_file()):
        return []
    found = []
    with path.open() as lines:
        for line in lines:
            # a 100-epoch MNIST run writes 46,900 per-iteration lines (38 MB): only the lines
            # that mention the key are parsed
            if f'"{key}"' not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the torn last line of a killed run
                continue
            # a record a report can use: a JSON object with a numeric epoch and value
            if (
                isinstance(record, dict)
                and is_number(record.get(key))
                and is_number(record.get("epoch"))
            ):
                found.append(record)
    return found


def learning_curve(run_dir: str) -> dict[int, float]:
    """Test accuracy per epoch from a run's ``metrics.jsonl``."""
    return {r["epoch"]: r["test/accuracy"] for r in records_with(run_dir, "test/accuracy")}


def alignment_curves(run_dir: str, iterations_per_epoch: int | None) -> Any:
    """``align/*`` and ``flip/*`` of a run, indexed by (fractional) epoch."""
    pd = _pandas()
    records = records_with(run_dir, ALIGN)
    if not records:
        return None
    frame = pd.DataFrame(records)
    per_epoch = iterations_per_epoch or 0
    x = frame["iteration"] / per_epoch if per_epoch else frame["epoch"]
    values = frame[[c for c in frame.columns if c.startswith(("align/", "flip/"))]]
    return values.set_axis(x.to_numpy(float), axis=0).astype(float)


def _mean_alignment(sub: Any) -> Any:
    pd = _pandas()
    curves = [
        c
        for c in (
            alignment_curves(d, n)
            for d, n in zip(sub["run_dir"], sub["iterations_per_epoch"], strict=True)
        )
        if c is not None
    ]
    return pd.concat(curves).groupby(level=0).mean().sort_index() if curves else None


def selection_metric(frame: Any) -> str:
    """``val/accuracy`` when every run of ``frame`` measured it, else the published
    ``train/accuracy``."""
    column = frame.get(SELECT_ON_VALIDATION)
    return SELECT_ON_VALIDATION if column is not None and column.notna().all() else SELECT_ON


def best_label(frame: Any) -> str:
    """What ``best/test/accuracy`` means for these runs, for axis labels and tables."""
    if (frame["best/metric"] == "val/accuracy").all():
        return "test accuracy at the best epoch on validation"
    return "best test accuracy"


def unfinished_counts(unfinished: list[dict[str, Any]]) -> str:
    """``"3 diverged, 1 incomplete"``: the runs left out of a report, by reason."""
    counts: dict[str, int] = {}
    for u in unfinished:
        reason = str(u["reason"]).split(" (")[0]
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{n} {reason}" for reason, n in counts.items())
