"""``python -m binary_nn.train``: the published command line.

Example (the published DFA run on CIFAR-10)::

    python -m binary_nn.train --dataset CIFAR10 --method DFA --bn --init 0.001 --lr 0.0001 \\
        --hidden-act signsat -v -b 128 --epochs 100 --hidden 700,500,300,200 --binarize \\
        --weight-clipping 1 --wandb --run-name auto
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import options
from .cli import run_cli
from .run.config import TrainConfig
from .run.console import Console

PROG = "binary_nn.train"


DESCRIPTION = (
    "Train a network, real or binary, with backpropagation (GD, alias BP), DFA or DRTP. "
    "Gradients are sums over the batch, so the learning rates that work are small "
    "(the published runs use 1e-6 .. 1e-4)."
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every :class:`TrainConfig` option, grouped."""
    return options.build_parser(TrainConfig, PROG, DESCRIPTION)


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse a command line into a (not yet validated) :class:`TrainConfig`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return TrainConfig(**options.parsed_values(build_parser(), argv), argv=argv)


def main(argv: Sequence[str] | None = None) -> int:
    from .run.loop import run

    def job() -> int:
        config = config_from_args(argv)
        summary = run(config, trackers=[Console(config.verbose)])
        epochs = summary["epochs_completed"]
        accuracy = summary.get("test/accuracy")
        scores = "no test set" if accuracy is None else f"test accuracy {accuracy:.4f}"
        print(
            f"done: {scores} after {epochs} epoch{'s' if epochs != 1 else ''} "
            f"(seed {summary['seed']})"
        )
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
