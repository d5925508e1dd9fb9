"""The reproduction table as a figure: each cell's measured test accuracy against the published
one, read from ``reproduction.md`` (its ``measured / published (difference)`` cells)::

    python docs/results/plot_reproduction.py   # writes docs/results/reproduction_mnist.png
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
CELL = re.compile(r"([0-9.]+) / ([0-9.]+) \(([-+][0-9.]+)\)")


def cells(page: Path) -> list[tuple[str, float, float]]:
    """(label, measured, published) test accuracy of every row of the page's tables."""
    found, section = [], ""
    for line in page.read_text().splitlines():
        if line.startswith(("Without batch", "With batch")):
            section = "no bn" if line.startswith("Without") else "bn"
        parts = [p.strip() for p in line.strip("|").split("|")]
        if len(parts) == 8 and CELL.fullmatch(parts[6]):
            measured, published, _ = CELL.fullmatch(parts[6]).groups()
            weights = "bin" if parts[2] == "True" else "real"
            label = f"{parts[0].upper()} {parts[1]} {weights} ({section})"
            found.append((label, float(measured), float(published)))
    return found


def main() -> None:
    rows = cells(HERE / "reproduction.md")
    fig, ax = plt.subplots(figsize=(6, 6))
    low = min(min(m, p) for _, m, p in rows) - 0.02
    ax.plot([low, 1], [low, 1], color="grey", linewidth=0.8, label="measured = published")
    for label, measured, published in rows:
        marker = "o" if "(no bn)" in label else "s"
        rule = label.split()[0]
        color = {"GD": "tab:red", "DFA": "tab:blue"}.get(rule, "tab:green")
        ax.plot(published, measured, marker, markersize=5, alpha=0.8, color=color)
    ax.set_xlabel("published test accuracy")
    ax.set_ylabel("measured test accuracy (seed 1)")
    ax.set_title(f"MNIST, the published best setting of each triple: {len(rows)} cells\n"
                 "(red GD, blue DFA, green DRTP; circles without batch norm, squares with)",
                 fontsize=9)  # fmt: skip
    ax.set_xlim(low, 1)
    ax.set_ylim(low, 1)
    fig.tight_layout()
    fig.savefig(HERE / "reproduction_mnist.png", dpi=100)
    print(f"wrote {HERE / 'reproduction_mnist.png'} ({len(rows)} cells)")


if __name__ == "__main__":
    main()
