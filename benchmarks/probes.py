"""What each probe (evaluation, HSIC plane, alignment) costs against a training epoch.

The published MLP (784-700-500-300-200-10, batch 128, float32) on real MNIST with
``--data-dir`` (synthetic data of MNIST's shape otherwise). Per repeat, a training epoch and
then each probe take turns, and every share is formed within the repeat, so that the drifts
of a shared machine hit them alike. Prints one markdown table::

    python benchmarks/probes.py --data-dir ~/data --repeats 3

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time

from epoch_time import HIDDEN, VARIANTS, load, spread
from threadpoolctl import threadpool_limits

from binary_nn.run.alignment import Alignment
from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import train_epoch
from binary_nn.run.probes import Evaluation, InformationPlane

PROBES = {
    "evaluation": Evaluation,
    "HSIC plane": InformationPlane,
    "alignment (512 examples)": Alignment,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="real MNIST from this data directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rules", default="DFA,DRTP,GD")
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        dataset = load(args)
        print(
            f"data: {dataset.name}, {args.threads} threads, {args.repeats} repeats: median "
            "(min-max) seconds; share = probe / the training epoch of the same repeat\n"
        )
        print("| rule | variant | epoch s | probe | probe s | share of epoch |")
        print("|---|---|---|---|---|---|")
        for variant_name, variant in VARIANTS.items():
            for rule in args.rules.split(","):
                config = TrainConfig(method=rule, hidden=HIDDEN, lr=1e-5, seed=1, **variant)
                exp = build(config.resolved(), dataset)
                probes = {name: make() for name, make in PROBES.items()}
                for probe in probes.values():  # compile and warm up before timing
                    probe(exp.probe_context)
                epochs: list[float] = []
                seconds: dict[str, list[float]] = {name: [] for name in probes}
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    train_epoch(exp, 1, 0, [])
                    epochs.append(time.perf_counter() - t0)
                    for name, probe in probes.items():
                        t0 = time.perf_counter()
                        probe(exp.probe_context)
                        seconds[name].append(time.perf_counter() - t0)
                for name, values in seconds.items():
                    shares = [v / e for v, e in zip(values, epochs, strict=True)]
                    print(
                        f"| {rule} | {variant_name} | {spread(epochs)} | {name} "
                        f"| {spread(values, 3)} | {statistics.median(shares):.3f} "
                        f"({min(shares):.3f}-{max(shares):.3f}) |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
