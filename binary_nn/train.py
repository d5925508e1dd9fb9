"""``python -m binary_nn.train``: the published command line.

Example (the published DFA run on CIFAR-10)::

    python -m binary_nn.train --dataset CIFAR10 --method DFA --bn --init 0.001 --lr 0.0001 \\
        --hidden-act signsat -v -b 128 --epochs 100 --hidden 700,500,300,200 --binarize \\
        --weight-clipping 1 --wandb --run-name auto
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import deferred_stop, run_cli
from .run.command import train_request
from .run.config import PROG, build_parser, config_from_args
from .run.console import Console

__all__ = ["PROG", "build_parser", "config_from_args", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    from .run.loop import run

    def job() -> int:
        config, resume = train_request(argv)
        with deferred_stop() as stop:  # Ctrl-C, SIGTERM: stop between steps, checkpointed
            summary = run(config, trackers=[Console(config.verbose)], resume=resume, stop=stop)
        epochs = summary["epochs_completed"]
        if summary.get("already_finished"):
            early = ", stopped early" if summary.get("stopped_early") else ""
            print(
                f"{config.out} is finished ({epochs} epochs{early}): nothing to do, nothing "
                "changed; to train it further, resume it with a larger -e/--epochs"
            )
            return 0
        if epochs == 0 and summary.get("status") == "completed":  # -e 0: nothing to train
            saved = f", saved to {config.save}" if config.save else " (give --save to keep it)"
            print(f"done: an untrained network (0 epochs, seed {summary['seed']}){saved}")
            return 0
        accuracy = summary.get("test/accuracy")
        scores = "no test set" if accuracy is None else f"test accuracy {accuracy:.4f}"
        if summary.get("best/metric") == "val/accuracy" and "best/test/accuracy" in summary:
            # one definition of the run's result: the epoch its validation split selected
            scores = (
                f"test accuracy {summary['best/test/accuracy']:.4f} at epoch "
                f"{summary['best/epoch']}, selected on val/accuracy ({scores} at the last)"
            )
        print(
            f"done: {scores} after {epochs} epoch{'s' if epochs != 1 else ''} "
            f"(seed {summary['seed']})"
        )
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
