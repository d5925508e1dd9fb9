"""Epoch time, evaluation and statistics cost, FLOP bound and peak memory of the published MLP.

Prints one markdown table. Runs on synthetic data of MNIST's shape by default, on real MNIST
with ``--data-dir``; compares with the same network in PyTorch on the CPU when torch is
installed (``pip install torch==2.13.0``)::

    python benchmarks/epoch_time.py --repeats 3
    python benchmarks/epoch_time.py --data-dir ~/data --memory

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from timing import machine_header, paired, spread, timed

from binary_nn.data import Dataset, load_dataset
from binary_nn.learning.cost import rule_costs
from binary_nn.nn import kernels
from binary_nn.nn.network import classifier
from binary_nn.run.build import build
from binary_nn.run.config import TrainConfig
from binary_nn.run.loop import train_epoch
from binary_nn.run.probes import EVAL_CHUNK, Evaluation

evaluate = Evaluation()

HIDDEN = (700, 500, 300, 200)
VARIANTS = {
    "tanh, real": {},
    "signsat, binary, bn": {"bn": True, "binarize": True, "hidden_act": "signsat"},
}
#: the variant the CLI's epoch is measured for (BP, as its defaults run it)
CLI_VARIANT = "tanh, real"


def gemm_rate(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a large square product (all threads allowed)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _layers(n_in: int, n_classes: int) -> list[tuple[int, int]]:
    return list(itertools.pairwise([n_in, *HIDDEN, n_classes]))


def _rule_macs(n_in: int, n_classes: int) -> dict[str, dict[str, int]]:
    """The cost summary's MACs per example, per rule, of the published MLP."""
    network = classifier(n_in, HIDDEN, n_classes, shape_only=True)
    return {row["rule"]: row for row in rule_costs(network)}


def epoch_flops(rule: str, n_in: int, n_classes: int, n_examples: int) -> float:
    """Multiply-adds x 2 of one epoch's products, as the cost summary counts them
    (:mod:`binary_nn.learning.cost`; elementwise work not counted)."""
    return float(2 * n_examples * _rule_macs(n_in, n_classes)[rule]["total_macs"])


def products_seconds(rule: str, n_in: int, n_classes: int, n_batches: int) -> float:
    """One epoch of the rule's matrix products alone, in the layouts our layers use (random
    float32 arrays, a bare loop): the floor an implementation with free elementwise work
    would reach on this machine."""
    rng = np.random.default_rng(0)
    layers = _layers(n_in, n_classes)
    weights = [rng.standard_normal((i, o)).astype(np.float32) for i, o in layers]
    grads = [np.empty_like(w) for w in weights]
    feedback = [rng.standard_normal((n_classes, h)).astype(np.float32) for h in HIDDEN]
    x = rng.standard_normal((128, n_in)).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        inputs = [x]
        for w in weights:
            inputs.append(inputs[-1] @ w)
        error = inputs[-1]
        if rule == "GD":
            delta = error
            for k in range(len(weights) - 1, -1, -1):
                np.matmul(inputs[k].T, delta, out=grads[k])
                if k > 0:
                    delta = delta @ weights[k].T
        else:
            np.matmul(inputs[-2].T, error, out=grads[-1])
            for k, matrix in enumerate(feedback):
                np.matmul(inputs[k].T, error @ matrix, out=grads[k])
    return time.perf_counter() - t0


def eval_flops(n_in: int, n_classes: int, n_examples: int) -> float:
    """Multiply-adds x 2 of the forward passes of an evaluation of ``n_examples``."""
    return float(2 * n_examples * _rule_macs(n_in, n_classes)["GD"]["forward_macs"])


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


class TorchWorker:
    """The same net, MSE (sum), plain SGD in PyTorch, in its own process (its thread pool must
    not share a process with our timings), timing one epoch per request so that its epochs
    take turns with ours."""

    def __init__(self, variant_name: str, args: argparse.Namespace) -> None:
        command = [sys.executable, __file__, "--torch-worker", variant_name]
        command += ["--threads", str(args.threads)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read()  # "ready": data loaded, net built

    def _read(self) -> str:
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker exited; run it alone to see why")
        return line.strip()

    def _request(self, what: str) -> float:
        self._process.stdin.write(f"{what}\n")
        self._process.stdin.flush()
        return float(self._read())

    def epoch(self) -> float:
        return self._request("epoch")

    def evaluate(self) -> float:
        return self._request("eval")

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait()


def torch_worker(variant: dict, dataset: Dataset, threads: int) -> None:
    """Serve requests on stdin, seconds on stdout: ``epoch`` (one PyTorch training epoch) and
    ``eval`` (a ``no_grad`` forward of the training and test examples, in evaluation mode, in
    chunks of our evaluation's size).

    The net as a PyTorch user writes it: ``nn.Linear(bias=False)`` layers with ``nn.Tanh``
    (or a straight-through sign), ``F.mse_loss(reduction="sum")``, ``torch.optim.SGD``,
    ``zero_grad(set_to_none=True)``, batches gathered from a float32 tensor scaled once.
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    binary = variant.get("binarize", False)
    signsat = variant.get("hidden_act") == "signsat"

    class SignSat(torch.nn.Module):
        def forward(self, a):
            passed = a * (a.abs() < 1)
            return passed + (torch.where(a > 0, 1.0, -1.0) - passed).detach()

    class BinaryLinear(torch.nn.Linear):
        def forward(self, x):
            w = self.weight
            return F.linear(x, w + (torch.where(w > 0, 1.0, -1.0) - w).detach())

    sizes = [dataset.n_features, *HIDDEN, dataset.n_classes]
    layers: list = []
    for k, (i, o) in enumerate(itertools.pairwise(sizes)):
        hidden = k < len(HIDDEN)
        linear = (BinaryLinear if binary and hidden else torch.nn.Linear)(i, o, bias=False)
        torch.nn.init.uniform_(linear.weight, -0.1, 0.1)
        layers.append(linear)
        if hidden and variant.get("bn"):
            layers.append(torch.nn.BatchNorm1d(o, eps=1e-3))
        layers.append(SignSat() if hidden and signsat else torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=1e-5)

    def scaled(x: np.ndarray):  # once, float32
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 127.5 - 1)

    x_all, x_test = scaled(dataset.x_train), scaled(dataset.x_test)
    targets = F.one_hot(torch.from_numpy(dataset.y_train.astype(np.int64)), dataset.n_classes)
    t_all = targets.float() * 2 - 1
    print("ready", flush=True)
    for request in sys.stdin:
        t0 = time.perf_counter()
        if request.strip() == "eval":
            net.eval()
            with torch.no_grad():
                for x in (x_all, x_test):
                    for chunk in x.split(EVAL_CHUNK):
                        net(chunk).argmax(dim=1)
            net.train()
            print(time.perf_counter() - t0, flush=True)
            continue
        order = torch.randperm(len(t_all))
        for b in range(len(t_all) // 128):
            idx = order[b * 128 : (b + 1) * 128]
            loss = F.mse_loss(net(x_all[idx]), t_all[idx], reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        print(time.perf_counter() - t0, flush=True)


class TimedStatistics:
    """Wraps a run's per-iteration statistics and adds up the seconds spent in them."""

    def __init__(self, statistics) -> None:
        self.statistics = statistics
        self.seconds = 0.0

    def __call__(self, *args):
        t0 = time.perf_counter()
        result = self.statistics(*args)
        self.seconds += time.perf_counter() - t0
        return result


def summarising_step_seconds(run, n_batches: int, pairs: int = 20) -> float:
    """Per epoch, what the optimizer's step adds when it also summarises the gradients (the
    statistics take the gradients' summaries from it): the median over ``pairs`` of a step
    with summaries minus one without, on the run's arrays, times the epoch's batches."""
    extra = []
    for k in range(pairs):
        order = (True, False) if k % 2 else (False, True)
        seconds = {flag: timed(run.optimizer.step, flag) for flag in order}
        extra.append(seconds[True] - seconds[False])
    return max(statistics.median(extra), 0.0) * n_batches


def measure(
    dataset: Dataset,
    rules: list[str],
    variant: dict,
    repeats: int,
    torch: TorchWorker | None,
    cli: CliRun | None = None,
) -> dict:
    """Per repeat: a PyTorch epoch, a CLI epoch (``cli``) and per rule a training epoch (with
    the per-iteration statistics, timed inside it), back to back; then PyTorch's and each
    rule's evaluation, and the rule's products alone.

    Everything takes turns within each repeat, so that the drifts of a shared machine hit
    all alike, and every ratio is formed within a repeat (paired) before its median is taken;
    the statistics' share is taken within the very epoch they ran in.
    """

    def config(key: str) -> TrainConfig:
        rule, _, optimizer = key.partition("@")  # e.g. "GD@adam"; plain SGD otherwise
        return TrainConfig(method=rule, optimizer=optimizer or "sgd", hidden=HIDDEN,
                           lr=1e-5, seed=1, init=0.1, **variant)  # fmt: skip

    runs = {rule: build(config(rule).resolved(), dataset) for rule in rules}
    for run in runs.values():
        run.statistics = TimedStatistics(run.statistics)
    # load the compiled kernels before anything is timed
    parts = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    small = Dataset("warm-up", *(part[:512] for part in parts), n_classes=dataset.n_classes)
    for rule in rules:
        warm_up = build(config(rule).resolved(), small)
        train_epoch(warm_up, 1, 0, [])
        evaluate(warm_up.probe_context)
    times: dict[str, list[float]] = {"torch": [], "torch/eval": [], "cli": []}
    for rule in rules:
        times |= {f"{rule}/{k}": [] for k in ("epoch", "stats", "eval", "rate", "products")}

    def our_epoch(rule: str) -> float:
        # the machine's rate right before, for a bound paired with this very epoch
        times[f"{rule}/rate"].append(gemm_rate(repeats=3))
        runs[rule].statistics.seconds = 0.0
        return timed(train_epoch, runs[rule], 1, 0, [])

    # the epochs of a repeat run back to back (in reverse order every other repeat), so that
    # each ratio pairs epochs that ran seconds apart; the rest of the repeat comes after them
    epochs = {f"{rule}/epoch": partial(our_epoch, rule) for rule in rules}
    if cli is not None:
        epochs = {"cli": cli.epoch, **epochs}
    if torch is not None:
        epochs = {"torch": torch.epoch, **epochs}
    for repeat in range(repeats):
        for key in list(epochs)[:: 1 if repeat % 2 == 0 else -1]:
            times[key].append(epochs[key]())
        if torch is not None:
            times["torch/eval"].append(torch.evaluate())
        for rule in rules:
            run = runs[rule]
            n_batches = len(dataset.y_train) // run.config.batchsize
            fused = summarising_step_seconds(run, n_batches)
            times[f"{rule}/stats"].append(run.statistics.seconds + fused)
            times[f"{rule}/eval"].append(timed(evaluate, run.probe_context))
            base = rule.partition("@")[0]
            products = products_seconds(base, dataset.n_features, dataset.n_classes, n_batches)
            times[f"{rule}/products"].append(products)
    for rule in rules:  # the training alone, as PyTorch's epoch does nothing else
        epochs, stats = times[f"{rule}/epoch"], times[f"{rule}/stats"]
        times[f"{rule}/train"] = [e - s for e, s in zip(epochs, stats, strict=True)]
    return times


def cli_data(shape: str, data_dir: str | None, tmp: Path) -> list[str]:
    """The CLI's dataset arguments: real MNIST from ``data_dir``, else synthetic data saved
    in ``tmp``."""
    if shape == "mnist" and data_dir:
        return ["-d", "MNIST", "--data-dir", data_dir]
    path = tmp / f"{shape}.npz"
    ds = synthetic(shape)
    np.savez(path, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    return ["-d", str(path)]


def cli_command(data: list[str], out: Path, *options: str) -> list[str]:
    """A one-epoch ``python -m binary_nn.train`` of the published MLP."""
    model = ["--hidden", ",".join(map(str, HIDDEN)), "--lr", "1e-5", "--init", "0.1"]
    run = ["-e", "1", "--seed", "1", "--out", str(out)]
    return [sys.executable, "-m", "binary_nn.train", *data, *model, *run, *options]


class CliRun:
    """BP, tanh, real weights through ``python -m binary_nn.train`` as a user runs it (the
    per-iteration statistics on, written to the run directory): a fresh one-epoch run per
    request, and the ``time/train`` it logs."""

    def __init__(self, data: list[str], tmp: Path, threads: int) -> None:
        self._data, self._tmp, self._runs = data, tmp, 0
        self._env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))

    def epoch(self) -> float:
        self._runs += 1
        out = self._tmp / f"cli-{self._runs}"
        command = cli_command(self._data, out, "-m", "GD")
        subprocess.run(command, check=True, capture_output=True, env=self._env)
        with open(out / "metrics.jsonl") as lines:
            return next(r["time/train"] for r in map(json.loads, lines) if "time/train" in r)


def peak_memory_mb(shape: str, data_dir: str | None) -> float:
    """Peak RSS of a whole one-epoch CLI run (DFA, binary, bn) in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        data = cli_data(shape, data_dir, Path(tmp))
        run = cli_command(data, Path(tmp) / "run", "-m", "DFA", "--bn", "--binarize")
        probe = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, *run], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip()) / 1024


def load(args: argparse.Namespace) -> Dataset:
    return load_dataset("MNIST", args.data_dir) if args.data_dir else synthetic("mnist")


def feasibility(dataset: Dataset, n_train: int, n_eval: int) -> str:
    """What the FLOP counts alone allow, before any timing: the evaluation's share of an
    epoch's FLOPs and DFA's (DRTP's) FLOPs against BP's."""
    flops = {
        rule: epoch_flops(rule, dataset.n_features, dataset.n_classes, n_train)
        for rule in ("GD", "DFA")
    }
    ev = eval_flops(dataset.n_features, dataset.n_classes, n_eval)
    return (
        f"FLOPs alone: eval = {ev / flops['GD']:.3f} of a BP epoch's and "
        f"{ev / flops['DFA']:.3f} of a DFA/DRTP epoch's; DFA/DRTP = "
        f"{flops['DFA'] / flops['GD']:.3f} of BP's."
    )


def table(dataset: Dataset, args: argparse.Namespace, has_torch: bool) -> None:
    rules = args.rules.split(",")
    if "GD" in rules:  # BP with each other optimizer, beside plain SGD's BP
        rules += [f"GD@{name}" for name in args.optimizers.split(",") if name]
    rate_before = gemm_rate()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cli = None
        if not args.no_cli and "GD" in rules:
            cli = CliRun(cli_data("mnist", args.data_dir, Path(tmp)), Path(tmp), args.threads)
        for variant_name, variant in VARIANTS.items():
            worker = TorchWorker(variant_name, args) if has_torch else None
            with_cli = cli if variant_name == CLI_VARIANT else None
            try:
                times = measure(dataset, rules, variant, args.repeats, worker, with_cli)
                rows.append((variant_name, times))
            finally:
                if worker is not None:
                    worker.close()
    rate = max(rate_before, gemm_rate())
    n_train = len(dataset.y_train) // 128 * 128
    n_eval = len(dataset.y_train) + len(dataset.y_test)
    eval_bound = eval_flops(dataset.n_features, dataset.n_classes, n_eval) / (rate * 1e9)
    print(
        f"data: {dataset.name}, {args.threads} threads, {args.kernels} kernels, "
        f"best large-GEMM rate {rate:.1f} GFLOP/s, "
        f"{args.repeats} repeats: median (min-max); ratios are taken within each repeat.\n"
        "FLOP bound = the epoch's products at the best rate; epoch/bound takes the rate "
        "measured just before that epoch.\n"
        f"eval = forward of the {n_eval} train and test examples, FLOP bound {eval_bound:.2f} s; "
        "stats = time inside the per-iteration statistics in the timed epoch, plus what "
        "summarising the gradients adds to the optimizer's steps.\n"
        "products = the epoch's matrix products alone in a bare loop, timed right after it.\n"
        f"{feasibility(dataset, n_train, n_eval)}\n"
    )
    print(
        "| rule | variant | epoch s | torch s | ours/torch | of BP | GEMM GFLOP/s | FLOP bound s "
        "| epoch/bound | products s | epoch/products | eval s | eval/train | eval/(train+eval) "
        "| stats s | stats/epoch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant_name, t in rows:
        for rule in rules:
            epoch, ev, rates = t[f"{rule}/epoch"], t[f"{rule}/eval"], t[f"{rule}/rate"]
            products = t[f"{rule}/products"]
            flops = epoch_flops(
                rule.partition("@")[0], dataset.n_features, dataset.n_classes, n_train
            )
            bound = flops / (rate * 1e9)
            paired_bound = [e * r * 1e9 / flops for e, r in zip(epoch, rates, strict=True)]
            stats = t[f"{rule}/stats"]
            torch_cells = "- | -"
            if t["torch"] and rule == "GD":
                torch_cells = f"{spread(t['torch'])} | {spread(paired(epoch, t['torch']))}"
            of_bp = "-"
            if rule != "GD" and "GD" in rules:
                of_bp = spread(paired(epoch, t["GD/epoch"]))
            print(
                f"| {rule} | {variant_name} | {spread(epoch)} | {torch_cells} | {of_bp} "
                f"| {spread(rates, 0)} | {bound:.2f} | {spread(paired_bound)} "
                f"| {spread(products)} | {spread(paired(epoch, products))} | {spread(ev)} "
                f"| {spread(paired(ev, epoch))} "
                f"| {spread([e / (e + tr) for e, tr in zip(ev, epoch, strict=True)])} "
                f"| {spread(stats, 3)} | {spread(paired(stats, epoch), 3)} |",
                flush=True,
            )
    for variant_name, t in rows:
        if t["torch/eval"]:
            print(f"\nPyTorch eval ({variant_name}): {spread(t['torch/eval'])} s", end="")
        if t["cli"]:
            print(f"; CLI BP epoch (time/train): {spread(t['cli'])} s", end="")
    print()
    targets_table(rows)


#: (what, variant, numerator, denominator, at most): the targets of the speed issue
TARGETS = [
    ("BP epoch, statistics apart / PyTorch's", "tanh, real", "GD/train", "torch", 0.9),
    ("BP epoch through the CLI, statistics on / PyTorch's", "tanh, real", "cli", "torch", 0.9),
    ("BP epoch, statistics apart / PyTorch's", "signsat, binary, bn", "GD/train", "torch", 0.6),
    *[
        (f"{rule} epoch / BP's", variant, f"{rule}/epoch", "GD/epoch", 0.85)
        for variant in VARIANTS
        for rule in ("DFA", "DRTP")
    ],
    *[
        ("evaluation of 70,000 / PyTorch's no_grad forward", variant, "GD/eval", "torch/eval", 0.9)
        for variant in VARIANTS
    ],
    *[
        ("BP epoch with Adam / with plain SGD", variant, "GD@adam/epoch", "GD/epoch", 1.10)
        for variant in VARIANTS
    ],
]


def targets_table(rows: list[tuple[str, dict]]) -> None:
    """Each target of the speed issue: the paired ratio's median (min-max) over the repeats."""
    times = dict(rows)
    print("\n| target | variant | ratio: median (min-max) | at most | met (median) |")
    print("|---|---|---|---|---|")
    for what, variant, numerator, denominator, limit in TARGETS:
        t = times.get(variant, {})
        if not t.get(numerator) or not t.get(denominator):
            continue  # not measured in this run (no torch, --no-cli, a rule left out)
        ratios = paired(t[numerator], t[denominator])
        met = "yes" if statistics.median(ratios) <= limit else "**no**"
        print(f"| {what} | {variant} | {spread(ratios)} | {limit} | {met} |")
    print(
        "| float64 exact to the spec | all | tests/test_spec_step.py, tests/test_rules.py "
        "| - | tested |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="real MNIST from this data directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rules", default="GD,DFA,DRTP")
    parser.add_argument(
        "--optimizers", default="adam", help="BP epochs with these optimizers too (beside sgd)"
    )
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-cli", action="store_true", help="no one-epoch CLI runs")
    parser.add_argument("--memory", action="store_true", help="also peak RSS of whole runs")
    parser.add_argument(
        "--kernels",
        choices=("numba", "numpy"),
        default=kernels.default_kernels().name,
        help="implementation of binary_nn.nn.kernels (default: numba when installed)",
    )
    parser.add_argument("--torch-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernels == "numba" and kernels.NUMBA is None:
        parser.error("--kernels numba needs numba: pip install -e '.[fast]'")
    # this process's default, and its CLI runs' (--memory) through the environment
    os.environ[kernels.KERNELS_ENV] = args.kernels
    with threadpool_limits(args.threads):
        if args.torch_worker:
            torch_worker(VARIANTS[args.torch_worker], load(args), args.threads)
            return
        try:
            import torch  # noqa: F401

            has_torch = not args.no_torch
        except ImportError:
            has_torch = False
        print(machine_header())
        table(load(args), args, has_torch)
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
