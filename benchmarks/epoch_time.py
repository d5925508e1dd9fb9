"""Epoch time, evaluation and statistics cost, FLOP bound and peak memory of the published MLP.

Prints one markdown table. Runs on synthetic data of MNIST's shape by default, on real MNIST
with ``--data-dir``; compares with the same network in PyTorch on the CPU when torch is
installed (``pip install torch==2.13.0``)::

    python benchmarks/epoch_time.py --repeats 3
    python benchmarks/epoch_time.py --data-dir ../shared/data --memory

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from binary_nn.config import TrainConfig
from binary_nn.data import Dataset, load_dataset
from binary_nn.trainer import build, evaluate, train_epoch

HIDDEN = (700, 500, 300, 200)
VARIANTS = {
    "tanh, real": {},
    "signsat, binary, bn": {"bn": True, "binarize": True, "hidden_act": "signsat"},
}


def gemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a large square product (all threads allowed)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def epoch_flops(rule: str, n_in: int, n_classes: int, n_examples: int) -> float:
    """Multiply-adds x 2 of one epoch's products (elementwise work not counted)."""
    sizes = [n_in, *HIDDEN, n_classes]
    layers = list(itertools.pairwise(sizes))
    forward = sum(2 * i * o for i, o in layers)
    weight_grads = forward
    if rule == "GD":  # input gradients of every layer but the first
        backward = weight_grads + sum(2 * i * o for i, o in layers[1:])
    else:  # projections e @ B_l instead of the chained backward pass
        backward = weight_grads + sum(2 * n_classes * h for h in HIDDEN)
    return float(n_examples * (forward + backward))


def synthetic(shape: str) -> Dataset:
    rng = np.random.default_rng(0)
    n_train, n_test, features = (50000, 10000, 3072) if shape == "cifar" else (60000, 10000, 784)
    return Dataset(
        f"synthetic-{shape}",
        rng.integers(0, 256, (n_train, features), dtype=np.uint8),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, features), dtype=np.uint8),
        rng.integers(0, 10, n_test),
    )


def measure_ours(dataset: Dataset, rules: list[str], variant: dict, repeats: int) -> dict:
    """Per rule, epochs with the per-iteration statistics (the default) and without.

    Rules and both kinds of epoch take turns within each repeat, so that the drifts of a
    shared machine hit them alike; the difference of the medians is the statistics' cost.
    """
    runs = {
        (rule, log_every): build(
            TrainConfig(
                method=rule,
                hidden=HIDDEN,
                lr=1e-5,
                seed=1,
                init=0.1,
                log_every=log_every,
                **variant,
            ).resolved(),
            dataset,
        )
        for rule in rules
        for log_every in (1, 10**9)
    }
    times = {rule: {"epoch": [], "bare": [], "eval": []} for rule in rules}
    for _ in range(repeats):
        for rule in rules:
            t = times[rule]
            t["epoch"].append(_timed(train_epoch, runs[rule, 1], 1, 0, []))
            t["bare"].append(_timed(train_epoch, runs[rule, 10**9], 1, 0, []))
            t["eval"].append(_timed(evaluate, runs[rule, 1]))
    return {
        rule: {**t, "stats": statistics.median(t["epoch"]) - statistics.median(t["bare"])}
        for rule, t in times.items()
    }


def measure_torch(dataset: Dataset, variant: dict, repeats: int, threads: int) -> list[float]:
    """The same net, MSE (sum), plain SGD in PyTorch; STEs as detach tricks."""
    import torch

    torch.set_num_threads(threads)
    binary = variant.get("binarize", False)
    signsat = variant.get("hidden_act") == "signsat"

    class Layer(torch.nn.Module):
        def __init__(self, n_in: int, n_out: int, hidden: bool) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(n_in, n_out).uniform_(-0.1, 0.1))
            self.bn = (
                torch.nn.BatchNorm1d(n_out, eps=1e-3) if hidden and variant.get("bn") else None
            )
            self.hidden = hidden

        def forward(self, x):
            w = self.w
            if binary and self.hidden:
                w = w + (torch.where(w > 0, 1.0, -1.0) - w).detach()
            a = x @ w
            if self.bn is not None:
                a = self.bn(a)
            if self.hidden and signsat:
                passed = a * (a.abs() < 1)
                return passed + (torch.where(a > 0, 1.0, -1.0) - passed).detach()
            return torch.tanh(a)

    sizes = [dataset.n_features, *HIDDEN, dataset.n_classes]
    net = torch.nn.Sequential(
        *[Layer(i, o, k < len(HIDDEN)) for k, (i, o) in enumerate(itertools.pairwise(sizes))]
    )
    opt = torch.optim.SGD(net.parameters(), lr=1e-5)
    x_all = torch.from_numpy(dataset.x_train.copy())  # IDX arrays are read-only views
    y_all = torch.from_numpy(dataset.y_train.astype(np.int64))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        order = torch.randperm(len(y_all))
        for b in range(len(y_all) // 128):
            idx = order[b * 128 : (b + 1) * 128]
            x = x_all[idx].float() / 127.5 - 1
            target = torch.nn.functional.one_hot(y_all[idx], dataset.n_classes).float() * 2 - 1
            loss = ((net(x) - target) ** 2).sum()
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def torch_in_subprocess(variant_name: str, args: argparse.Namespace) -> list[float]:
    command = [
        sys.executable,
        __file__,
        "--torch-worker",
        variant_name,
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
    ]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_memory_mb(shape: str, data_dir: str | None) -> float:
    """Peak RSS of a whole one-epoch CLI run (DFA, binary, bn) in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        if shape == "mnist" and data_dir:
            data = ["-d", "MNIST", "--data-dir", data_dir]
        else:
            path = Path(tmp) / f"{shape}.npz"
            ds = synthetic(shape)
            np.savez(
                path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test
            )
            del ds
            data = ["-d", str(path)]
        run = [
            sys.executable,
            "-m",
            "binary_nn.train",
            *data,
            "-m",
            "DFA",
            "--bn",
            "--binarize",
            "--hidden",
            ",".join(map(str, HIDDEN)),
            "-e",
            "1",
            "--lr",
            "1e-5",
            "--out",
            str(Path(tmp) / "run"),
        ]
        probe = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, *run], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip()) / 1024


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="real MNIST from this data directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rules", default="GD,DFA,DRTP")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--memory", action="store_true", help="also peak RSS of whole runs")
    parser.add_argument("--torch-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:  # PyTorch's thread pool must not share a process with our timings
        with threadpool_limits(args.threads):
            dataset = load_dataset("MNIST", args.data_dir) if args.data_dir else synthetic("mnist")
            times = measure_torch(dataset, VARIANTS[args.torch_worker], args.repeats, args.threads)
        print(json.dumps(times))
        return

    with threadpool_limits(args.threads):
        rate = gemm_rate()
        dataset = load_dataset("MNIST", args.data_dir) if args.data_dir else synthetic("mnist")
        try:
            import torch  # noqa: F401

            has_torch = not args.no_torch
        except ImportError:
            has_torch = False
        print(
            f"data: {dataset.name}, {args.threads} threads, large-GEMM rate {rate:.1f} GFLOP/s, "
            f"median (min-max) of {args.repeats} epochs\n"
        )
        print(
            "| rule | variant | epoch s | torch s | ours/torch | FLOP bound s | epoch/bound "
            "| eval s (% epoch) | stats s (% epoch) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        bp_time: dict[str, float] = {}
        for variant_name, variant in VARIANTS.items():
            torch_times = torch_in_subprocess(variant_name, args) if has_torch else None
            rules = args.rules.split(",")
            measured = measure_ours(dataset, rules, variant, args.repeats)
            for rule in rules:
                m = measured[rule]
                epoch = statistics.median(m["epoch"])
                if rule == "GD":
                    bp_time[variant_name] = epoch
                bound = epoch_flops(
                    rule, dataset.n_features, dataset.n_classes, len(dataset.y_train) // 128 * 128
                ) / (rate * 1e9)
                torch_cell = ratio = "-"
                if torch_times is not None and rule == "GD":
                    torch_cell = spread(torch_times)
                    ratio = f"{epoch / statistics.median(torch_times):.2f}"
                elif rule != "GD" and variant_name in bp_time:
                    ratio = f"{epoch / bp_time[variant_name]:.2f} of BP"
                ev = statistics.median(m["eval"])
                print(
                    f"| {rule} | {variant_name} | {spread(m['epoch'])} | {torch_cell} | {ratio} "
                    f"| {bound:.2f} | {epoch / bound:.2f} | {ev:.2f} ({100 * ev / epoch:.0f}%) "
                    f"| {m['stats']:.3f} ({100 * m['stats'] / epoch:.1f}%) |",
                    flush=True,
                )
    if args.memory:
        print()
        for shape in ("mnist", "cifar"):
            print(
                f"peak RSS of a whole 1-epoch {shape}-shaped run (DFA, binary, bn): "
                f"{peak_memory_mb(shape, args.data_dir):.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
