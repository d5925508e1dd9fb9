"""Training time with the numba kernels against the numpy ones, interleaved in one process.

Two copies of the same run (same seed) train side by side, one with each implementation of
:mod:`binary_nn.nn.kernels`; they take turns every few batches, so that the drifts of a shared
machine hit both alike. Prints one markdown table of seconds per epoch and their ratio::

    python benchmarks/kernels_ab.py --data-dir ~/data

Runs on synthetic data of MNIST's shape without ``--data-dir``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# the same net, variants and synthetic data as the epoch benchmark (this script's folder is on
# sys.path when it runs)
from epoch_time import HIDDEN, VARIANTS, synthetic
from threadpoolctl import threadpool_limits

from binary_nn.data import Dataset, load_dataset
from binary_nn.learning import train_step
from binary_nn.nn import kernels
from binary_nn.run.build import TrainingRun, build
from binary_nn.run.config import TrainConfig

BACKENDS = ("numpy", "numba")


def train_batches(exp: TrainingRun, order: np.ndarray, batches: range) -> None:
    """The training loop's steps for ``batches`` of ``order``, with the statistics every
    iteration."""
    ds, model, size = exp.dataset, exp.model, exp.config.batchsize
    for b in batches:
        index = order[b * size : (b + 1) * size]
        x = ds.scale(ds.x_train[index], model.dtype)
        train_step(model, exp.rule, exp.optimizer, exp.loss, x, ds.y_train[index], exp.statistics)


def measure(dataset: Dataset, rule: str, variant: dict, epochs: int, turn: int) -> dict:
    """Seconds per epoch of each backend, taking turns every ``turn`` batches."""
    config = TrainConfig(method=rule, hidden=HIDDEN, lr=1e-5, seed=1, **variant).resolved()
    backends = {name: kernels.kernels_named(name) for name in BACKENDS}
    runs = {name: build(config, dataset, backend) for name, backend in backends.items()}
    n_batches = len(dataset.y_train) // config.batchsize
    seconds = dict.fromkeys(BACKENDS, 0.0)
    for backend in backends.values():  # compile or load the kernels before anything is timed
        train_batches(build(config, dataset, backend), np.arange(len(dataset.y_train)), range(2))
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(dataset.y_train))
        for k, start in enumerate(range(0, n_batches, turn)):
            batches = range(start, min(start + turn, n_batches))
            for backend in BACKENDS if k % 2 else BACKENDS[::-1]:
                t0 = time.perf_counter()
                train_batches(runs[backend], order, batches)
                seconds[backend] += time.perf_counter() - t0
    return {backend: s / epochs for backend, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="real MNIST from this data directory")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rules", default="GD,DFA,DRTP")
    parser.add_argument("--turn", type=int, default=12, help="batches per turn")
    args = parser.parse_args()
    if kernels.NUMBA is None:
        parser.error("numba is not installed: pip install -e '.[fast]'")
    dataset = load_dataset("MNIST", args.data_dir) if args.data_dir else synthetic("mnist")
    print(
        f"data: {dataset.name}, {args.threads} threads, {args.epochs} epochs per backend, "
        f"turns of {args.turn} batches; seconds per epoch (training loop, statistics included)\n"
    )
    print("| rule | variant | numpy s | numba s | numba/numpy |")
    print("|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for variant_name, variant in VARIANTS.items():
            for rule in args.rules.split(","):
                t = measure(dataset, rule, variant, args.epochs, args.turn)
                print(
                    f"| {rule} | {variant_name} | {t['numpy']:.2f} | {t['numba']:.2f} "
                    f"| {t['numba'] / t['numpy']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
