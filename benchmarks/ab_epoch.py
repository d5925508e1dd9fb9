"""Epoch time of the published MLP under two code trees (or two optimizers), taking turns.

Each side is a worker process that builds the network once (784-700-500-300-200-10, batch 128,
float32, MNIST-shaped synthetic data) and trains one epoch each time it is asked; the sides
alternate, and each ratio is formed within a turn (see ``timing.py``)::

    python benchmarks/ab_epoch.py --before /path/to/an/older/checkout --turns 5
    python benchmarks/ab_epoch.py --optimizers sgd,adam --turns 5

Prints one table: seconds per epoch of each side and the paired ratio, per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from timing import paired, spread

VARIANTS = {
    "tanh, real": {},
    "signsat, binary, bn": {"bn": True, "binarize": True, "hidden_act": "signsat"},
}
WORKER = """
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from binary_nn.data import Dataset
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import build, train_epoch
options = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (60000, 28, 28, 1), dtype=np.uint8)
y = rng.integers(0, 10, 60000)
data = Dataset("synthetic", x, y, x[:100], y[:100], n_classes=10)
config = TrainConfig(hidden=(700, 500, 300, 200), lr=1e-5, seed=1, **options).resolved()
with threadpool_limits(int(sys.argv[2])):
    run = build(config, data)
    train_epoch(run, 1, 0, [])  # compile or load the kernels
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        train_epoch(run, 1, 0, [])
        print(time.perf_counter() - t0, flush=True)
"""


def worker(tree: Path, options: dict[str, object], threads: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(options), str(threads)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tree,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()
    return process


def epoch(process: subprocess.Popen[str]) -> float:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("epoch\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="an older checkout to compare with this one")
    parser.add_argument("--optimizers", help="two optimizers to compare on this checkout")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    if args.before:
        sides = {"before": (Path(args.before), {}), "after": (here, {})}
    else:
        first, second = (args.optimizers or "sgd,adam").split(",")
        sides = {first: (here, {"optimizer": first}), second: (here, {"optimizer": second})}
    names = list(sides)
    print(f"{args.turns} turns, {args.threads} BLAS thread(s); seconds per epoch, median "
          f"(min-max); ratio {names[1]}/{names[0]} paired within each turn\n")  # fmt: skip
    print(f"| variant | {names[0]} s | {names[1]} s | {names[1]}/{names[0]} |")
    print("|---|---|---|---|")
    for variant, options in VARIANTS.items():
        workers = {
            name: worker(tree, {**options, **extra}, args.threads)
            for name, (tree, extra) in sides.items()
        }
        times: dict[str, list[float]] = {name: [] for name in names}
        for turn in range(args.turns):
            for name in names if turn % 2 else names[::-1]:
                times[name].append(epoch(workers[name]))
        for process in workers.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait()
        a, b = times[names[0]], times[names[1]]
        print(f"| {variant} | {spread(a)} | {spread(b)} | {spread(paired(b, a), 3)} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
