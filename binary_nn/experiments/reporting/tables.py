"""The report's markdown tables: grid search, alignment, cost, and measured beside published."""

from __future__ import annotations

from typing import Any

from .figures import PANEL
from .load import (
    SCORES,
    SECTION,
    _mean_alignment,
    section_description,
    section_title,
    unfinished_counts,
)


def section_heading(key: tuple[Any, ...]) -> list[str]:
    """A section's heading (the published one) and the line naming its net and epochs."""
    return [f"## {section_title(key[0], key[1])}", "", section_description(key), ""]


def _lr(value: float) -> str:
    mantissa, exponent = f"{value:.1E}".split("E")
    return f"{mantissa}E{int(exponent)}"


def grid_search_markdown(
    best: Any, unfinished: list[dict[str, Any]], select_on: str = "train/accuracy"
) -> str:
    lines = [f"# Grid search: best (init, lr) per triple, selected on {select_on}", ""]
    header = (
        "| algorithm | activation | binary weights | initial value | learning rate | "
        + " | ".join(SCORES)
        + " | runs |"
    )
    for key, group in best.groupby(SECTION, sort=True):
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
        lines += [f"## Runs not counted ({unfinished_counts(unfinished)})", ""]
        lines += [f"- {u['run_dir']}: {u['reason']}" for u in unfinished]
        lines.append("")
    return "\n".join(lines)


def alignment_markdown(runs: Any) -> str | None:
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

        def cell(column: str, last: Any = last) -> str:
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


def cost_markdown(frame: Any) -> str | None:
    """Per architecture of the runs, the per-rule cost table their config.json holds."""
    from ...learning.cost import render

    seen: dict[str, dict[str, Any]] = {}
    for architecture, cost in zip(frame["architecture"], frame["cost"], strict=True):
        if isinstance(cost, dict) and architecture not in seen:
            seen[architecture] = cost
    if not seen:
        return None
    parts = ["# What learning costs, per architecture of the runs (per example)", ""]
    parts += [render(cost, architecture) for architecture, cost in sorted(seen.items())]
    return "\n".join(parts)


def comparison_markdown(best: Any, published: dict[tuple[Any, ...], dict[str, Any]]) -> str:
    lines = [
        "# Measured against published",
        "",
        "Each cell: measured / published (measured - published).",
    ]
    for section, group in best.groupby(SECTION, sort=True):
        dataset, bn = section[0], section[1]
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
            *section_heading(section),
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
