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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...cli import ArgumentParser, describe, run_cli
from ...files import claim_output, write_text_atomic
from .figures import plot_alignment, plot_boxes, plot_curves
from .load import learning_curve, load, selection_metric
from .published import PUBLISHED, parse_published, published_table
from .statistics import best_settings, chosen_runs, summary_table
from .tables import alignment_markdown, comparison_markdown, cost_markdown, grid_search_markdown

PROG = "binary_nn.report"

__all__ = ["learning_curve", "main", "make_report", "parse_published", "published_table"]


def make_report(sources: Sequence[str], out: Path, compare_to: str | None = None) -> dict[str, Any]:
    """Write every output into ``out``; return what was written and the markdown table."""
    # everything the outputs need is checked before any of them is written
    claim_output(out, "--out", "dir")
    published = parse_published(published_table(compare_to)) if compare_to else None
    frame, unfinished = load(sources)
    out.mkdir(parents=True, exist_ok=True)
    best = best_settings(frame)
    select_on = selection_metric(frame)
    table = grid_search_markdown(best, unfinished, select_on)
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
