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

from .cli import ArgumentParser, run_cli
from .data import DATASETS
from .learning.rules import RULES
from .nn.activations import ACTIVATIONS
from .nn.quantizers import WEIGHT_STES
from .run.config import DTYPES, TrainConfig
from .run.tracking import Console

PROG = "binary_nn.train"


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = ArgumentParser(
        prog=PROG,
        description="Train a (binary) MLP with backpropagation (GD/BP), DFA or DRTP.",
    )
    p.add_argument(
        "-m",
        "--method",
        default=d.method,
        help=f"learning rule: {', '.join(RULES.names())} (BP is an alias of GD)",
    )
    p.add_argument(
        "-d",
        "--dataset",
        default=d.dataset,
        help=f"{', '.join(DATASETS.names())} (case-insensitive), or a PATH.npz holding "
        "x_train, y_train, x_test, y_test",
    )
    p.add_argument(
        "--data-dir",
        default=d.data_dir,
        help="where dataset files are looked for and cached "
        "(default: $BINARY_NN_DATA, else the user cache directory)",
    )
    p.add_argument("-e", "--epochs", type=int, default=d.epochs, help="number of epochs")
    p.add_argument("-b", "--batchsize", type=int, default=d.batchsize, help="batch size")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate of plain SGD")
    p.add_argument(
        "--hidden", default=",".join(map(str, d.hidden)), help="comma-separated hidden layer sizes"
    )
    p.add_argument(
        "--conv",
        default=d.conv,
        metavar="SPEC",
        help="convolutional layers before --hidden, e.g. 32c5,mp2,64c5,mp2: {C}c{K} is a KxK "
        "convolution with C channels (stride 1, zero padding K//2), mp{P} a PxP max-pool",
    )
    p.add_argument(
        "--init", type=float, default=d.init, help="weights are drawn from U(-init, init)"
    )
    p.add_argument("--bn", action="store_true", help="batch normalisation in every hidden layer")
    p.add_argument("--sn", action="store_true", help="scale each hidden pre-activation by 1/fan-in")
    p.add_argument(
        "--hidden-act",
        default=d.hidden_act,
        help=f"hidden activation: {', '.join(ACTIVATIONS.names())}",
    )
    p.add_argument(
        "--last-act",
        default=d.last_act,
        help=f"output activation: {', '.join(ACTIVATIONS.names())}",
    )
    p.add_argument(
        "--binarize",
        action="store_true",
        help="binary (sign) weights in the hidden layers, real latent weights updated",
    )
    p.add_argument(
        "--binarize_last",
        "--binarize-last",
        dest="binarize_last",
        action="store_true",
        help="binary weights in the output layer too",
    )
    p.add_argument(
        "--weight-clipping",
        type=float,
        default=d.weight_clipping,
        help="clip every weight to [-c, c] after each update; off when <= 0",
    )
    p.add_argument(
        "--weight-ste",
        default=d.weight_ste,
        help=f"gradient estimator of binary weights: {', '.join(WEIGHT_STES.names())}",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: configuration and HSIC per epoch; -vv: every iteration",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of every random draw; drawn and reported when not given",
    )
    p.add_argument("--dtype", default=d.dtype, choices=DTYPES, help="computation precision")
    p.add_argument(
        "--wandb", action="store_true", help="log to Weights & Biases (project '{dataset} custom')"
    )
    p.add_argument(
        "--run-name",
        default=None,
        help="run name; 'auto' gives '{METHOD} {binarised|continuous} {hidden_act}'",
    )
    p.add_argument("--out", default=None, help="run directory (default: runs/<timestamp>-<name>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out already holds (refused otherwise)",
    )
    p.add_argument(
        "--save",
        default=None,
        metavar="PATH",
        help="write the trained model and feedback matrices to this .npz",
    )
    p.add_argument(
        "--load",
        default=None,
        metavar="PATH",
        help="start from this checkpoint .npz instead of drawing weights and feedback",
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=d.log_every,
        help="record the per-iteration statistics every N iterations",
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="DRTP only: each hidden layer updates as soon as its forward is done and "
        "releases its activations (same results, less memory)",
    )
    p.add_argument(
        "--alignment-every",
        type=int,
        default=d.alignment_every,
        metavar="N",
        help="measure the alignment with backpropagation (align/*, flip/*) every N iterations; "
        "0 turns it off (default: at every epoch end)",
    )
    p.add_argument(
        "--alignment-examples",
        type=int,
        default=d.alignment_examples,
        metavar="N",
        help="the alignment's probe batch: the first N training examples",
    )
    p.add_argument(
        "--bn-recalibrate",
        type=int,
        default=d.bn_recalibrate,
        metavar="N",
        help="with --bn: before each evaluation, set batch norm's running statistics to the "
        "average over the first N training batches under the current weights (no update; "
        "default 0: the running averages of training, as the study has it)",
    )
    return p


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse a command line into a (not yet validated) :class:`TrainConfig`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = vars(build_parser().parse_args(argv))
    return TrainConfig(**args, argv=argv)


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
