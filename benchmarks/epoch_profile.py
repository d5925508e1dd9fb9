"""Where an epoch of the published MLP goes: a per-function profile of one training epoch,
grouped into the matrix products and everything else (#38: find the non-product third).

    python benchmarks/epoch_profile.py                   # synthetic MNIST-shaped data
    python benchmarks/epoch_profile.py --rules GD,DFA --top 15

One BLAS thread, float32, batch 128, the published 784-700-500-300-200-10 network, real
(tanh) and binary (signsat, batch norm); one warm-up epoch on a small set first (numba
compiles), then one epoch under ``cProfile``. A function's *own* time (``tottime``) includes
the operators it runs inline: a layer's ``forward`` holds its ``x @ W``. So the table groups
functions by what their own time is: **products** (the layers' forward and backward, whose
own time is their matrix products, and the backend's ``matmul_into`` of the weight
gradients), **kernels** (the fused elementwise loops: activations,
batch norm, updates), **numpy** (numpy functions called by name) and **Python** (the loop,
the step, the rules, the probes' bookkeeping). Beside it: the same epoch's products alone
timed bare (``epoch_time.products_seconds``) and the FLOP bound at the machine's measured
rate, so the shares read against what the machine could do. cProfile adds its own overhead
per Python call (a few percent of an epoch here): compare shares, not absolute seconds, with
``epoch_time.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections import defaultdict
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from epoch_time import VARIANTS, epoch_flops, gemm_rate, products_seconds, synthetic
from timing import machine_header

from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import train_epoch

HIDDEN = "700,500,300,200"
#: the functions whose own time is their matrix products (file, function name)
PRODUCTS = {
    ("layers.py", "forward"), ("layers.py", "backward"), ("backend.py", "matmul_into"),
}  # fmt: skip


def category(filename: str, function: str) -> str:
    """What a function's own time is (see the module docstring)."""
    name = Path(filename).name
    if (name, function) in PRODUCTS:
        return "products"
    if "/kernels/" in filename or "numba" in filename:
        return "kernels"
    if filename.startswith("~") or "numpy" in filename:
        return "numpy"
    return "Python"


def profile_epoch(rule: str, variant: dict, dataset) -> tuple[float, list[tuple]]:
    """One profiled epoch: its seconds and ``(category, where, calls, own seconds)`` rows."""
    config = TrainConfig(
        method=rule, hidden=HIDDEN, batchsize=128, dtype="float32", seed=1,
        alignment_every=0, **variant,
    ).resolved()  # fmt: skip
    training = build(config, dataset)
    small = build(config, synthetic("mnist"))
    train_epoch(small, 1, 0, [])  # warm-up: numba compiles, BLAS starts
    profiler = cProfile.Profile()
    profiler.enable()
    train_epoch(training, 1, 0, [])
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, _, function), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(filename).name}:{function}" if not filename.startswith("~") else function
        rows.append((category(filename, function), where, calls, own))
    return stats.total_tt, rows  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default="GD", help="comma-separated rules (default GD)")
    parser.add_argument("--top", type=int, default=12, help="functions listed per profile")
    args = parser.parse_args()
    print(machine_header())
    dataset = synthetic("mnist")
    n_batches = len(dataset.y_train) // 128
    with threadpool_limits(1):
        rate = gemm_rate()
        for rule in args.rules.split(","):
            for name, variant in VARIANTS.items():
                total, rows = profile_epoch(rule, variant, dataset)
                bare = products_seconds(rule, 784, 10, n_batches)
                bound = epoch_flops(rule, 784, 10, n_batches * 128) / (rate * 1e9)
                shares: dict[str, float] = defaultdict(float)
                for kind, _, _, own in rows:
                    shares[kind] += own
                print(f"\n### {rule}, {name}: one epoch {total:.2f} s under cProfile; its "
                      f"products alone {bare:.2f} s bare, FLOP bound {bound:.2f} s "
                      f"({rate:.0f} GFLOP/s, 1 thread)\n")  # fmt: skip
                print("| part | seconds | share of the epoch |\n|---|---|---|")
                for kind in ("products", "kernels", "numpy", "Python"):
                    print(f"| {kind} | {shares[kind]:.2f} | {shares[kind] / total:.1%} |")
                print("\n| function | part | calls | own seconds | share |\n|---|---|---|---|---|")
                for kind, where, calls, own in sorted(rows, key=lambda r: -r[3])[: args.top]:
                    print(f"| {where} | {kind} | {calls:,} | {own:.3f} | {own / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
