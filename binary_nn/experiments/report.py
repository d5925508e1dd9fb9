"""``python -m binary_nn.report RUNS... --out DIR``: the study's tables and figures.

Reads run directories (any depth: a campaign, a sweep, single runs) and CSV files exported
from Weights & Biases with the same column names, and writes to ``--out``:

- ``grid_search.md``: per (dataset, batch norm), one row per (algorithm, activation, binary
  weights) triple with the best (init, lr) on ``train/accuracy`` (mean over seeds) and its
  scores, in the published layout;
- ``boxplot_<dataset>_<bn>.png``: the best test accuracy of each triple over seeds;
- ``curves_<dataset>_<bn>.png``: test accuracy per epoch, mean over seeds (run directories);
- ``summary.csv``: per triple, mean, std and 95% confidence interval of the best test accuracy,
  and a two-sided Mann-Whitney U test of each rule against backpropagation (GD);
- ``cost.md``: per architecture, what learning costs per rule (MACs, held activations,
  feedback bytes; the ``cost`` of the runs' ``config.json``, see ``python -m binary_nn.summary``);
- ``alignment_<dataset>.png`` and ``alignment.md`` (runs that measured it): per rule x weight
  type, the angle between each hidden layer's update and the true gradient against epochs
  (mean over seeds), and the final angles in a table;
- ``comparison.md`` with ``--compare-to mnist|cifar10|TABLE.md``: measured beside published,
  per cell (the published MNIST and CIFAR-10 grid-search tables ship with binary_nn).

Needs the ``report`` extra: ``pip install 'binary-nn[report]'`` (pandas, matplotlib, scipy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from ..cli import ArgumentParser, describe, run_cli
from ..errors import ConfigError
from ..run.tracking import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE

PROG = "binary_nn.report"
TRIPLE = ["method", "hidden_act", "binarize"]
#: a section of the report: runs that differ only in (rule, activation, weights, init, lr, seed)
GROUP = ["dataset", "bn", "hidden", "config_epochs"]
SCORES = [
    "train/accuracy",
    "train/precision",
    "train/f1",
    "test/accuracy",
    "test/precision",
    "test/f1",
]
REQUIRED_CSV = [*TRIPLE, "init", "lr", "train/accuracy", "test/accuracy"]
SELECT_ON = "train/accuracy"
BEST_TEST = "best/test/accuracy"
ALGORITHM_ORDER = {"DFA": 0, "DRTP": 1, "GD": 2}


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(
            "the report needs pandas, matplotlib and scipy: pip install 'binary-nn[report]'"
        ) from None
    return pd


def _dataset_name(name: str) -> str:
    from ..data import DATASETS

    return DATASETS.canonical(name) if name in DATASETS else str(name)


def read_run_dirs(root: Path) -> tuple[list[dict], list[dict]]:
    """Rows of finished runs under ``root``, and the unfinished ones (killed or failed)."""
    rows, unfinished = [], []
    for config_path in sorted(root.rglob(CONFIG_FILE)):
        run_dir = config_path.parent
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError):
            unfinished.append({"run_dir": str(run_dir), "reason": "unreadable config.json"})
            continue
        try:
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        except (OSError, ValueError):
            error = run_dir / "error.json"
            reason = "failed" if error.is_file() else "incomplete (no summary.json)"
            unfinished.append({"run_dir": str(run_dir), "reason": reason})
            continue
        row = {key: config.get(key) for key in ("dataset", "bn", *TRIPLE, "init", "lr", "seed")}
        row["dataset"] = _dataset_name(row["dataset"])
        row.update({k: summary.get(k) for k in (*SCORES, BEST_TEST)})
        row["status"] = summary.get("status")
        row["epochs"] = summary.get("epochs_completed")
        row["config_epochs"] = config.get("epochs")
        row["hidden"] = ",".join(map(str, config.get("hidden") or [])) or "-"
        n_train, batch = config.get("n_train"), config.get("batchsize")
        row["iterations_per_epoch"] = n_train // batch if n_train and batch else None
        row["architecture"] = config.get("architecture")
        row["cost"] = config.get("cost")
        row["run_dir"] = str(run_dir)
        rows.append(row)
    return rows, unfinished


def read_csv(path: Path):
    """A W&B export: one row per run, config and summary columns under the SPEC names."""
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
    for column, default in (
        ("dataset", path.stem),
        ("bn", False),
        ("seed", 1),
        ("status", "completed"),
        ("run_dir", ""),
        ("iterations_per_epoch", None),
        ("architecture", "-"),
        ("hidden", "-"),
        ("config_epochs", "-"),
        ("cost", None),
    ):
        if column not in frame.columns:
            frame[column] = default
    if BEST_TEST not in frame.columns:
        frame[BEST_TEST] = frame["test/accuracy"]
    for column in SCORES:
        if column not in frame.columns:
            frame[column] = float("nan")
    frame["dataset"] = frame["dataset"].map(_dataset_name)
    return frame


def load(sources: Sequence[str]):
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
            f"no finished runs found in {', '.join(sources)}"
            + (f" ({len(unfinished)} unfinished)" if unfinished else "")
        )
    for column in ("architecture", "hidden", "config_epochs"):  # old runs or exports lack them
        frame[column] = frame[column].fillna("-").astype(str) if column in frame else "-"
    frame["bn"] = frame["bn"].astype(bool)
    frame["binarize"] = frame["binarize"].astype(bool)
    frame["method"] = frame["method"].astype(str).str.upper().replace({"BP": "GD"})
    return frame, unfinished


def best_settings(frame):
    """Per (dataset, bn, triple): the (init, lr) with the best mean ``train/accuracy``."""
    means = (
        frame.groupby([*GROUP, *TRIPLE, "init", "lr"], dropna=False)
        .agg(
            **{c: (c, "mean") for c in (*SCORES, BEST_TEST)},
            runs=("seed", "size"),
            seeds=("seed", "nunique"),
        )
        .reset_index()
    )
    means = means.sort_values(SELECT_ON, ascending=False, na_position="last", kind="stable")
    best = means.drop_duplicates([*GROUP, *TRIPLE]).copy()
    best["order"] = list(
        zip(best["binarize"], best["hidden_act"], best["method"].map(ALGORITHM_ORDER), strict=True)
    )
    return best.sort_values([*GROUP, "order"]).drop(columns="order")


def section_title(dataset: str, bn: bool) -> str:
    return f"{dataset} {'with' if bn else 'without'} Batch Normalization"


def section_heading(key: tuple) -> list[str]:
    """A section's heading (the published one) and the line naming its net and epochs."""
    dataset, bn, hidden, epochs = key
    return [f"## {section_title(dataset, bn)}", "", f"Hidden layers {hidden}, {epochs} epochs.", ""]


def _lr(value: float) -> str:
    mantissa, exponent = f"{value:.1E}".split("E")
    return f"{mantissa}E{int(exponent)}"


def grid_search_markdown(best, unfinished: list[dict]) -> str:
    lines = ["# Grid search: best (init, lr) per triple, selected on train/accuracy", ""]
    header = (
        "| algorithm | activation | binary weights | initial value | learning rate | "
        + " | ".join(SCORES)
        + " | runs |"
    )
    for key, group in best.groupby(GROUP, sort=True):
        lines += [*section_heading(key), header, "|" + "---|" * (len(SCORES) + 6)]
        for _, row in group.iterrows():
            scores = " | ".join("-" if row[c] != row[c] else f"{row[c]:.4f}" for c in SCORES)
            runs = str(row["runs"])
            if row["runs"] > row["seeds"]:  # the same seed run twice is not two samples
                runs += f" ({row['runs'] - row['seeds']} duplicated seeds)"
            lines.append(
                f"| {row['method'].lower()} | {row['hidden_act']} | {row['binarize']} "
                f"| {row['init']:g} | {_lr(row['lr'])} | {scores} | {runs} |"
            )
        lines.append("")
    if unfinished:
        lines += ["## Unfinished runs (not counted)", ""]
        lines += [f"- {u['run_dir']}: {u['reason']}" for u in unfinished]
        lines.append("")
    return "\n".join(lines)


def chosen_runs(frame, best):
    """The runs (all seeds) of each triple's chosen (init, lr)."""
    keys = [*GROUP, *TRIPLE, "init", "lr"]
    return frame.merge(best[keys], on=keys, how="inner")


def summary_table(runs):
    """Mean, std, 95% CI of the best test accuracy per triple; Mann-Whitney U against GD."""
    import numpy as np
    from scipy import stats

    pd = _pandas()
    gd_values = {
        (*section, act, binarize): group[BEST_TEST].dropna().to_numpy(float)
        for (*section, _, act, binarize), group in runs[runs["method"] == "GD"].groupby(
            [*GROUP, *TRIPLE]
        )
    }
    records = []
    for key, group in runs.groupby([*GROUP, *TRIPLE, "init", "lr"], sort=True):
        values = group[BEST_TEST].dropna().to_numpy(float)
        record = dict(zip([*GROUP, *TRIPLE, "init", "lr"], key, strict=True))
        n = len(values)
        mean = float(values.mean()) if n else float("nan")
        std = float(values.std(ddof=1)) if n > 1 else float("nan")
        half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
        record.update(
            metric=BEST_TEST,
            n=n,
            best_test_accuracy_mean=mean,
            best_test_accuracy_std=std,
            best_test_accuracy_ci95_low=mean - half,
            best_test_accuracy_ci95_high=mean + half,
        )
        section = tuple(record[k] for k in GROUP)
        gd = gd_values.get((*section, record["hidden_act"], record["binarize"]), np.empty(0))
        if record["method"] != "GD" and n and len(gd):
            test = stats.mannwhitneyu(values, gd, alternative="two-sided")
            record.update(vs_gd_u=float(test.statistic), vs_gd_p=float(test.pvalue))
        else:
            record.update(vs_gd_u=float("nan"), vs_gd_p=float("nan"))
        records.append(record)
    return pd.DataFrame(records)


def _label(row) -> str:
    return f"{row['method']} {row['hidden_act']} {'bin' if row['binarize'] else 'real'}"


def _per_section_figures(runs, out: Path, prefix: str, draw) -> list[Path]:
    """One PNG per (dataset, bn): ``draw(ax, plt, group, title)`` returns False to skip it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    names: dict[str, int] = {}
    for (dataset, bn, hidden, epochs), group in runs.groupby(GROUP, sort=True):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        title = f"{section_title(dataset, bn)}: hidden {hidden}, {epochs} epochs"
        if draw(ax, plt, group, title):
            fig.tight_layout()
            stem = f"{prefix}_{dataset}_{'bn' if bn else 'nobn'}"
            names[stem] = names.get(stem, 0) + 1  # several nets or epochs: numbered files
            suffix = f"_{names[stem]}" if names[stem] > 1 else ""
            path = out / f"{stem}{suffix}.png"
            fig.savefig(path, dpi=100)
            written.append(path)
        plt.close(fig)
    return written


def _triples(group):
    """(label, runs) per triple of a section, in a stable order."""
    for key, sub in group.groupby(TRIPLE, sort=True):
        yield _label(dict(zip(TRIPLE, key, strict=True))), sub


def plot_boxes(runs, out: Path) -> list[Path]:
    def draw(ax, plt, group, title) -> bool:
        labels, data = zip(
            *((label, sub[BEST_TEST].dropna().to_numpy(float)) for label, sub in _triples(group)),
            strict=True,
        )
        positions = range(1, len(data) + 1)
        # a box only where there are seeds to summarise; every run as a point
        boxed = [(p, d) for p, d in zip(positions, data, strict=True) if len(d) > 1]
        if boxed:
            ax.boxplot([d for _, d in boxed], positions=[p for p, _ in boxed], widths=0.5)
        for p, d in zip(positions, data, strict=True):
            ax.plot([p] * len(d), d, "o", color="black", markersize=3, alpha=0.7)
        ax.set_xticks(list(positions), labels)
        ax.set_xlim(0.5, len(data) + 0.5)
        ax.set_ylabel("best test accuracy over seeds")
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="x", rotation=60)
        return True

    return _per_section_figures(runs, out, "boxplot", draw)


def records_with(run_dir: str, key: str) -> list[dict]:
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
            if key in record:
                found.append(record)
    return found


def learning_curve(run_dir: str) -> dict[int, float]:
    """Test accuracy per epoch from a run's ``metrics.jsonl``."""
    return {r["epoch"]: r["test/accuracy"] for r in records_with(run_dir, "test/accuracy")}


def plot_curves(runs, out: Path) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    pd = _pandas()

    def draw(ax, plt, group, title) -> bool:
        triples = list(_triples(group))
        methods = sorted(set(group["method"]), key=lambda m: ALGORITHM_ORDER.get(m, 9))
        if len(triples) > 6 and len(methods) > 1:  # crowded: one panel per rule
            fig = ax.figure
            fig.clear()
            fig.set_size_inches(4 * len(methods), 4.5)
            axes = fig.subplots(1, len(methods), sharey=True)
        else:
            axes = [ax]
        drawn, last_epoch = 0, 1
        for k, panel in enumerate(axes):
            panel.set_prop_cycle(color=plt.cm.tab20.colors)  # 12 triples: no colour twice
            for label, sub in triples:
                if len(axes) > 1 and label.split()[0] != methods[k]:
                    continue
                curves = [c for c in map(pd.Series, map(learning_curve, sub["run_dir"])) if len(c)]
                if curves:
                    mean = pd.concat(curves, axis=1).mean(axis=1).sort_index()
                    # markers: a one-epoch run is a visible point, not an invisible line
                    panel.plot(mean.index, mean.to_numpy(), marker="o", markersize=3, label=label)
                    drawn += 1
                    last_epoch = max(last_epoch, int(mean.index.max()))
        for k, panel in enumerate(axes):
            panel.set_xlim(0.5, last_epoch + 0.5)
            if last_epoch <= 20:  # whole epochs only
                panel.set_xticks(range(1, last_epoch + 1))
            else:
                panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.set_xlabel("epoch")
            panel.set_title(title if len(axes) == 1 else f"{methods[k]}: {title}", fontsize=7)
            if panel.has_data():
                panel.legend(fontsize=7, ncol=1 if len(axes) > 1 else 2)
        axes[0].set_ylabel("test accuracy (mean over seeds)")
        return drawn > 0

    return _per_section_figures(runs, out, "curves", draw)


ALIGN = "align/grad/0"
PANEL = ["binarize", "hidden_act", "bn"]


def alignment_curves(run_dir: str, iterations_per_epoch: int | None):
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


def _mean_alignment(sub):
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


def plot_alignment(runs, out: Path) -> list[Path]:
    """Per dataset: a grid of panels, a column per rule and a row per weight type (with
    activation and batch norm), each the gradient angle of every hidden layer over epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for dataset, group in runs.groupby("dataset", sort=True):
        cells = {}
        for key, sub in group.groupby(["method", *PANEL], sort=True):
            mean = _mean_alignment(sub)
            if mean is not None:
                cells[key] = mean
        if not cells:
            continue
        methods = sorted({k[0] for k in cells}, key=lambda m: ALGORITHM_ORDER.get(m, 9))
        rows = sorted({k[1:] for k in cells})
        fig, axes = plt.subplots(
            len(rows), len(methods), figsize=(4 * len(methods), 3 * len(rows)), squeeze=False
        )
        for (method, *row), mean in cells.items():
            ax = axes[rows.index(tuple(row))][methods.index(method)]
            layers = sorted(
                int(c.rsplit("/", 1)[1]) for c in mean.columns if c.startswith("align/grad/")
            )
            for k in layers:
                ax.plot(mean.index, mean[f"align/grad/{k}"], label=f"layer {k}")
            ax.axhline(90, color="grey", lw=0.8, ls=":")
            binarize, act, bn = row
            weights = "binary" if binarize else "real"
            ax.set_title(f"{method} {weights} ({act}{', bn' if bn else ''})", fontsize=10)
            ax.set_ylim(0, 120)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel("angle to BP gradient (deg)")
            ax.legend(fontsize=7)
        for ax in axes.flat:
            if not ax.has_data():
                ax.set_visible(False)
        fig.suptitle(f"{dataset}: alignment of each hidden layer's update with backprop")
        fig.tight_layout()
        path = out / f"alignment_{dataset}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def alignment_markdown(runs) -> str | None:
    """The last measured angles per (dataset, rule, weight type), mean over seeds."""
    lines = ["# Final alignment with backpropagation (degrees; mean over seeds)", ""]
    found = False
    for key, sub in runs.groupby(["dataset", "method", *PANEL], sort=True):
        mean = _mean_alignment(sub)
        if mean is None:
            continue
        found = True
        dataset, method, binarize, act, bn = key
        last = mean.iloc[-1]
        layers = sorted(
            int(c.rsplit("/", 1)[1]) for c in mean.columns if c.startswith("align/grad/")
        )
        lines += [
            f"## {dataset} {method} {'binary' if binarize else 'real'} weights, {act}"
            f"{', bn' if bn else ''} (epoch {mean.index[-1]:g})",
            "",
            "| layer | grad | signal (mean +- std) | weight (DFA) | sign flips |",
            "|---|---|---|---|---|",
        ]

        def cell(column: str, last=last) -> str:
            value = last.get(column)
            return "-" if value is None or value != value else f"{value:.1f}"

        for k in layers:
            flips = last.get(f"flip/{k}")
            flip = "-" if flips is None or flips != flips else f"{flips:.4f}"
            lines.append(
                f"| {k} | {cell(f'align/grad/{k}')} | {cell(f'align/signal/{k}')} +- "
                f"{cell(f'align/signal_std/{k}')} | {cell(f'align/weight/{k}')} | {flip} |"
            )
        lines.append("")
    return "\n".join(lines) if found else None


def cost_markdown(frame) -> str | None:
    """Per architecture of the runs, the per-rule cost table their config.json holds."""
    from ..learning.cost import render

    seen: dict[str, dict] = {}
    for architecture, cost in zip(frame["architecture"], frame["cost"], strict=True):
        if isinstance(cost, dict) and architecture not in seen:
            seen[architecture] = cost
    if not seen:
        return None
    parts = ["# What learning costs, per architecture of the runs (per example)", ""]
    parts += [render(cost, architecture) for architecture, cost in sorted(seen.items())]
    return "\n".join(parts)


PUBLISHED = {"mnist": "mnist_grid_search.md", "cifar10": "cifar10_grid_search.md"}


def published_table(name: str) -> Path:
    """A bundled published table by name (``mnist``, ``cifar10``), or a markdown file."""
    if name.lower() in PUBLISHED:
        from importlib import resources

        return Path(
            str(resources.files("binary_nn.experiments.reference") / PUBLISHED[name.lower()])
        )
    path = Path(name)
    if not path.is_file():
        raise ConfigError(
            f"--compare-to {name} is neither a file nor a bundled table; give a markdown "
            f"table or one of: {', '.join(PUBLISHED)}"
        )
    return path


def parse_published(path: Path) -> dict[tuple, dict]:
    """Rows of a published table in the layout of ``mnist_grid_search.md``, keyed by
    (dataset, bn, method, activation, binarize)."""
    from ..data import DATASETS

    rows: dict[tuple, dict] = {}
    section, header = None, None
    for line in Path(path).read_text().splitlines():
        title = re.match(r"#+\s*(\S+)\s+(with|without)\s+batch\s*norm", line, re.IGNORECASE)
        if title:
            name = title.group(1)
            section = (
                DATASETS.canonical(name) if name in DATASETS else name,
                title.group(2).lower() == "with",
            )
            header = None
            continue
        if not line.startswith("|") or section is None:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        method = row["algorithm"].upper().replace("BP", "GD")
        key = (*section, method, row["activation"], row["binary weights"].lower() == "true")
        rows[key] = row
    if not rows:
        raise ConfigError(
            f"--compare-to: {path} holds no table under a heading like "
            "'## MNIST without Batch Normalization'"
        )
    return rows


def comparison_markdown(best, published: dict[tuple, dict]) -> str:
    lines = [
        "# Measured against published",
        "",
        "Each cell: measured / published (measured - published).",
    ]
    for (dataset, bn, hidden, epochs), group in best.groupby(GROUP, sort=True):
        keys = [
            (row, (dataset, bn, row["method"], row["hidden_act"], row["binarize"]))
            for _, row in group.iterrows()
        ]
        matched = [(row, published[key]) for row, key in keys if key in published]
        if not matched:
            continue
        metrics = [c for c in matched[0][1] if c in SCORES]
        lines += [
            "",
            *section_heading((dataset, bn, hidden, epochs)),
            "| algorithm | activation | binary weights | initial value | learning rate | "
            + " | ".join(metrics)
            + " |",
            "|" + "---|" * (5 + len(metrics)),
        ]
        for row, pub in matched:
            cells = []
            for metric in metrics:
                ours, theirs = row[metric], float(pub[metric])
                cells.append(f"{ours:.4f} / {theirs:.4f} ({ours - theirs:+.4f})")
            lines.append(
                f"| {row['method'].lower()} | {row['hidden_act']} | {row['binarize']} | "
                f"{row['init']:g} / {pub['initial value']} | {_lr(row['lr'])} / "
                f"{pub['learning rate']} | " + " | ".join(cells) + " |"
            )
    if len(lines) == 3:
        lines += ["", "No (dataset, batch norm, triple) of the runs is in the published table."]
    return "\n".join(lines) + "\n"


def make_report(sources: Sequence[str], out: Path, compare_to: str | None = None) -> dict:
    """Write every output into ``out``; return what was written and the markdown table."""
    from ..run.tracking import write_text_atomic

    # everything the outputs need is checked before any of them is written
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory for the report")
    published = parse_published(published_table(compare_to)) if compare_to else None
    frame, unfinished = load(sources)
    out.mkdir(parents=True, exist_ok=True)
    best = best_settings(frame)
    table = grid_search_markdown(best, unfinished)
    write_text_atomic(out / "grid_search.md", table)
    runs = chosen_runs(frame, best)
    summary = summary_table(runs)
    write_text_atomic(out / "summary.csv", summary.to_csv(index=False))
    written = {
        "grid_search": out / "grid_search.md",
        "summary": out / "summary.csv",
        "boxplots": plot_boxes(runs, out),
        "curves": plot_curves(runs, out),
    }
    cost = cost_markdown(frame)
    if cost is not None:
        write_text_atomic(out / "cost.md", cost)
        written["cost"] = out / "cost.md"
    alignment = alignment_markdown(runs)
    if alignment is not None:
        write_text_atomic(out / "alignment.md", alignment)
        written["alignment"] = [out / "alignment.md", *plot_alignment(runs, out)]
    if published is not None:
        comparison = comparison_markdown(best, published)
        write_text_atomic(out / "comparison.md", comparison)
        written["comparison"] = out / "comparison.md"
    return {"written": written, "table": table, "runs": len(frame), "unfinished": unfinished}


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("sources", nargs="+", help="run directories and/or W&B CSV exports")
    parser.add_argument("--out", required=True, help="directory for the tables and figures")
    parser.add_argument(
        "--compare-to",
        metavar="TABLE",
        help=f"a published table to set beside ours: {', '.join(PUBLISHED)} (bundled) or a "
        "markdown file in their layout",
    )

    def job() -> int:
        args = parser.parse_args(argv)
        result = make_report(args.sources, Path(args.out), args.compare_to)
        print(result["table"])
        print(f"{result['runs']} finished runs, {len(result['unfinished'])} unfinished; wrote:")
        for value in result["written"].values():
            for path in value if isinstance(value, list) else [value]:
                print(f"  {path}")
        return 0

    return run_cli(PROG, job)
