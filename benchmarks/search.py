"""The searches against the full grid: epochs run, wall time and best point of each.

Runs ``sweeps/digits_grid.yaml`` (the published 72-point grid on digits, 20 epochs, chosen
on a validation split), the same grid with Hyperband early termination, and a Bayesian
search of its continuous version (20 runs), each with ``--processes 2``, and prints one
table::

    python benchmarks/search.py --out runs/search-benchmark

Finished searches are not run again (delete ``--out`` to measure afresh).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SWEEPS = {
    "grid (full)": "sweeps/digits_grid.yaml",
    "grid, hyperband": "sweeps/digits_grid_hyperband.yaml",
    "bayes, 20 runs": "sweeps/digits_bayes.yaml",
}


def summaries(out: Path) -> list[dict[str, object]]:
    found = []
    for path in sorted(out.glob("*/summary.json")):
        found.append(json.loads(path.read_text()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/search-benchmark")
    parser.add_argument("--processes", default="2")
    parser.add_argument("--seed", default="1")
    args = parser.parse_args()
    root = Path(args.out)
    here = Path(__file__).resolve().parent.parent
    rows = {}
    for name, sweep in SWEEPS.items():
        out = root / Path(sweep).stem
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "binary_nn.sweep", str(here / sweep), "--out", str(out),
             "--processes", args.processes, "--seed", args.seed, "--no-progress"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        runs = summaries(out)
        epochs = sum(int(s.get("epochs_completed", 0)) for s in runs)
        done = [s for s in runs if s.get("status") == "completed"]
        best = max(done, key=lambda s: s["val/accuracy"])
        rows[name] = (len(runs), epochs, seconds, best)
    grid_best = rows["grid (full)"][3]["val/accuracy"]
    grid_epochs = rows["grid (full)"][1]
    print(
        "| search | runs | epochs run | of the grid's | wall s | best val/accuracy "
        "| its test accuracy | best - grid's best (points) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (n, epochs, seconds, best) in rows.items():
        gap = 100 * (best["val/accuracy"] - grid_best)
        print(
            f"| {name} | {n} | {epochs} | {epochs / grid_epochs:.2f} | {seconds:.0f} "
            f"| {best['val/accuracy']:.4f} | {best['test/accuracy']:.4f} | {gap:+.2f} |"
        )


if __name__ == "__main__":
    main()
