"""The published grid-search tables that ship with binary_nn, and a parser for their layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError

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


def parse_published(path: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows of a published table in the layout of ``mnist_grid_search.md``, keyed by
    (dataset, bn, method, activation, binarize)."""
    from ...data import DATASETS

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
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
