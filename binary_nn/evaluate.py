"""``python -m binary_nn.evaluate CHECKPOINT_OR_RUN_DIR``: the scores of a saved model.

The architecture, the dtype, the dataset and where its files are come from the checkpoint (a
``--save`` file, or a run directory: its ``best.npz``, the epoch selected on the validation
split, when the run held one out, else its last ``checkpoint.npz``; the command says which);
``--dataset`` evaluates it on other data of the same shape. Prints accuracy, precision and F1
of each split asked for; ``--json FILE`` writes them with the confusion matrices::

    python -m binary_nn.evaluate runs/my-run --split test --split val
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli import ArgumentParser, describe, run_cli
from .errors import ConfigError
from .files import check_writable, write_json_atomic
from .run.build import run_dataset
from .run.checkpoint import (
    BEST_CHECKPOINT,
    RUN_CHECKPOINT,
    network_from_checkpoint,
    stored_config,
)
from .run.metrics import classification_scores, confusion
from .run.probes import predict

PROG = "binary_nn.evaluate"
SPLITS = ("train", "val", "test")


def checkpoint_of(source: str) -> tuple[Path, str]:
    """The checkpoint to score and how to describe it: a checkpoint file as given; in a run
    directory, its validation-selected ``best.npz`` when it has one, else its last
    ``checkpoint.npz``."""
    path = Path(source)
    if not path.is_dir():
        return path, str(path)
    best = path / BEST_CHECKPOINT
    if best.is_file():
        epoch = stored_config(best).get("best_epoch", "?")
        return best, f"{best} (epoch {epoch}, the best on val/accuracy)"
    last = path / RUN_CHECKPOINT
    if not last.is_file():
        raise ConfigError(f"{source} is a directory without a {RUN_CHECKPOINT}")
    return last, f"{last} (its last epoch; the run held out no validation set to select on)"


def evaluate(
    source: str, splits: Sequence[str], dataset: str | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """``{split}/accuracy``, ``/precision``, ``/f1`` and ``/confusion_matrix`` of each split,
    and ``scored``: which checkpoint (see ``checkpoint_of``). The data are looked for in
    ``data_dir``, else where the run found them (its ``--data-dir``)."""
    path, described = checkpoint_of(source)
    network, config = network_from_checkpoint(path, dtype=None)
    config = replace(
        config, dataset=dataset or config.dataset, data_dir=data_dir or config.data_dir
    )
    data = run_dataset(config)
    if data.input_shape != network.input_shape:
        raise ConfigError(
            f"the model takes examples of shape {network.input_shape} but {config.dataset} "
            f"has {data.input_shape}"
        )
    metrics: dict[str, Any] = {"checkpoint": str(source), "scored": described,
                               "dataset": config.dataset}  # fmt: skip
    for split in splits:
        labels = data.labels(split)
        if not len(labels):
            raise ConfigError(
                f"{config.dataset} has no {split} split here"
                + (" (the run held out no validation set: --val-split)" if split == "val" else "")
            )
        predicted = predict(network, data, split)
        metrics.update(classification_scores(labels, predicted, split))
        metrics[f"{split}/confusion_matrix"] = confusion(labels, predicted, data.n_classes)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("source", help="a checkpoint .npz or a run directory")
    parser.add_argument("-d", "--dataset", help="evaluate on this dataset (default: the run's)")
    parser.add_argument("--data-dir", help="where dataset files are looked for")
    parser.add_argument(
        "--split", action="append", choices=SPLITS, help="a split to score (repeatable; "
        "default: test)",
    )  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the scores as JSON")

    def job() -> int:
        args = parser.parse_args(argv)
        if args.json:
            check_writable(args.json, "--json")
        splits = args.split or ["test"]
        metrics = evaluate(args.source, splits, args.dataset, args.data_dir)
        print(f"scoring {metrics['scored']}")
        for split in splits:
            print(
                f"{split} accuracy {metrics[f'{split}/accuracy']:.4f}  precision "
                f"{metrics[f'{split}/precision']:.4f}  f1 {metrics[f'{split}/f1']:.4f}"
            )
        if args.json:
            write_json_atomic(Path(args.json), metrics)
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
