"""The report's figures: box plots, learning curves and alignment, one PNG per section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .load import (
    BEST_TEST,
    SECTION,
    TRIPLE,
    _mean_alignment,
    _pandas,
    algorithm_order,
    best_label,
    learning_curve,
    section_description,
    section_title,
    triple_label,
)

PANEL = ["binarize", "hidden_act", "bn"]


def _per_section_figures(runs: Any, out: Path, prefix: str, draw: Any) -> list[Path]:
    """One PNG per (dataset, bn): ``draw(ax, plt, group, title)`` returns False to skip it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    names: dict[str, int] = {}
    for key, group in runs.groupby(SECTION, sort=True):
        dataset, bn = key[0], key[1]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        title = f"{section_title(dataset, bn)}: {section_description(key)}"
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


def _triples(group: Any) -> Any:
    """(label, runs) per triple of a section, in a stable order."""
    for key, sub in group.groupby(TRIPLE, sort=True):
        yield triple_label(dict(zip(TRIPLE, key, strict=True))), sub


def plot_boxes(runs: Any, out: Path) -> list[Path]:
    def draw(ax: Any, plt: Any, group: Any, title: Any) -> bool:
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
        ax.set_ylabel(f"{best_label(group)} (seeds)")
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis="x", rotation=60)
        return True

    return _per_section_figures(runs, out, "boxplot", draw)


def plot_curves(runs: Any, out: Path) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    pd = _pandas()

    def draw(ax: Any, plt: Any, group: Any, title: Any) -> bool:
        triples = list(_triples(group))
        methods = sorted(set(group["method"]), key=lambda m: algorithm_order(m))
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
                    table = pd.concat(curves, axis=1).sort_index()
                    mean = table.mean(axis=1)
                    # markers: a one-epoch run is a visible point, not an invisible line
                    (line,) = panel.plot(
                        mean.index, mean.to_numpy(), marker="o", markersize=3, label=label
                    )
                    if table.shape[1] > 1:  # the spread over seeds: one standard deviation
                        spread = table.std(axis=1).to_numpy()
                        panel.fill_between(
                            mean.index, mean.to_numpy() - spread, mean.to_numpy() + spread,
                            color=line.get_color(), alpha=0.15, linewidth=0,
                        )  # fmt: skip
                    drawn += 1
                    last_epoch = max(last_epoch, int(mean.index.max()))
        for k, panel in enumerate(axes):
            panel.set_xlim(0.5, last_epoch + 0.5)
            if last_epoch <= 20:  # whole epochs only
                panel.set_xticks(range(1, last_epoch + 1))
            else:
                panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.set_xlabel("epoch")
            if len(axes) > 1:  # the section's title once, above the panels; each its rule
                panel.set_title(methods[k], fontsize=9)
            if panel.has_data():
                panel.legend(fontsize=7, ncol=1 if len(axes) > 1 else 2)
        if len(axes) == 1:
            axes[0].set_title(title, fontsize=8, wrap=True)
        else:
            axes[0].figure.suptitle(title, fontsize=8, wrap=True)
        axes[0].set_ylabel("test accuracy (mean ± sd over seeds)")
        return drawn > 0

    return _per_section_figures(runs, out, "curves", draw)


def plot_alignment(runs: Any, out: Path) -> list[Path]:
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
        methods = sorted({k[0] for k in cells}, key=lambda m: algorithm_order(m))
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
