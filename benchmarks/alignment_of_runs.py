"""The alignment of each run's rule with backpropagation, measured now on its checkpoint.

For runs trained without the alignment probe (campaigns set ``alignment_every: 0`` to save
time): loads each run directory's checkpoint (network and the rule's feedback), takes the
first ``--examples`` training examples, and prints one table of ``align/grad/{k}``, the angle
in degrees between the rule's weight gradient and backpropagation's for every hidden block or
residual unit (``binary_nn.run.alignment``)::

    python benchmarks/alignment_of_runs.py runs/resnet-fashion/*/seed-1 --data-dir ~/data

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from binary_nn.data import load_dataset
from binary_nn.learning.loss import LOSSES
from binary_nn.run.alignment import Alignment
from binary_nn.run.build import build
from binary_nn.run.checkpoint import load_checkpoint
from binary_nn.run.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (config.json, checkpoint.npz)")
    parser.add_argument("--data-dir")
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rows, width = [], 0
    with threadpool_limits(args.threads):
        for run_dir in map(Path, args.runs):
            stored = json.loads((run_dir / "config.json").read_text())
            config = TrainConfig.from_stored(stored.get("config", stored))
            data = load_dataset(config.dataset, args.data_dir)
            run = build(config.resolved(), data)
            load_checkpoint(run_dir / "checkpoint.npz", run.model, run.rule)
            x = data.scale(data.x_train[: args.examples], run.model.dtype)
            labels = data.y_train[: args.examples]
            loss = LOSSES.get(config.loss)
            metrics = Alignment._measure(run.model, run.rule, loss, x, labels)
            angles = [metrics[f"align/grad/{k}"] for k in range(len(run.model.hidden_blocks))]
            progress = sum(1 for line in (run_dir / "metrics.jsonl").open() if '"val/' in line)
            rows.append((run_dir.parent.name, progress, angles))
            width = max(width, len(angles))
    print(f"align/grad/k in degrees on the first {args.examples} training examples\n")
    print("| run | epochs logged | " + " | ".join(f"unit {k}" for k in range(width)) + " |")
    print("|---|---|" + "---|" * width)
    for name, progress, angles in rows:
        cells = ["-" if a is None else f"{a:.0f}" for a in angles]
        print(f"| {name} | {progress} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
