"""Training-step time of a convnet against the same net in PyTorch on the CPU, same threads.

The net of #13 (``--conv 32c5,mp2,64c5,mp2 --hidden 1000``, batch 128, float32, bias-free,
MSE summed, plain SGD), BP on real weights with tanh, and on binary weights with signsat and
batch norm (straight-through in PyTorch), on MNIST-shaped data. PyTorch runs in its own
process; its steps and ours take turns, and every ratio is formed within a turn::

    pip install torch==2.13.0
    python benchmarks/conv_time.py --steps 20 --repeats 5

Prints one markdown table: milliseconds per step (median over repeats, min-max), ours over
PyTorch's, the epoch (468 steps) that makes, and our DFA and DRTP steps over our BP step
(each rule on its own copy of the net, the rules taking turns too). Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits
from timing import machine_header, paired, spread, timed

from binary_nn import RULES, SGD, MSELoss, classifier, train_step

RULE_NAMES = ("GD", "DFA", "DRTP")

CONV, HIDDEN = "32c5,mp2,64c5,mp2", (1000,)
VARIANTS = {
    "tanh, real": {},
    "signsat, binary, bn": {"batch_norm": True, "binarize": True, "hidden_activation": "signsat"},
}


def torch_worker(variant_name: str, steps: int, threads: int) -> None:
    """Serve ``step`` requests on stdin: ``steps`` PyTorch steps each, their seconds out."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    variant = VARIANTS[variant_name]
    binary, bn = variant.get("binarize", False), variant.get("batch_norm", False)
    signsat = variant.get("hidden_activation") == "signsat"

    def sign_ste(w):
        return w + (torch.where(w > 0, 1.0, -1.0) - w).detach()

    def act(a):
        if signsat:
            passed = a * (a.abs() < 1)
            return passed + (torch.where(a > 0, 1.0, -1.0) - passed).detach()
        return torch.tanh(a)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 32, 5, padding=2, bias=False)
            self.c2 = torch.nn.Conv2d(32, 64, 5, padding=2, bias=False)
            self.f1 = torch.nn.Linear(7 * 7 * 64, 1000, bias=False)
            self.f2 = torch.nn.Linear(1000, 10, bias=False)
            norm = torch.nn.BatchNorm2d if bn else (lambda c, **k: torch.nn.Identity())
            self.b1, self.b2 = norm(32, eps=1e-3), norm(64, eps=1e-3)
            self.b3 = torch.nn.BatchNorm1d(1000, eps=1e-3) if bn else torch.nn.Identity()

        def conv(self, layer, x):
            w = sign_ste(layer.weight) if binary else layer.weight
            return F.conv2d(x, w, padding=2)

        def forward(self, x):
            x = act(self.b1(F.max_pool2d(self.conv(self.c1, x), 2)))
            x = act(self.b2(F.max_pool2d(self.conv(self.c2, x), 2)))
            w = sign_ste(self.f1.weight) if binary else self.f1.weight
            x = act(self.b3(F.linear(x.flatten(1), w)))
            return torch.tanh(self.f2(x))

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (128, 1, 28, 28)).astype(np.float32))
    target = F.one_hot(torch.from_numpy(rng.integers(0, 10, 128)), 10).float() * 2 - 1
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.mse_loss(net(x), target, reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        print(time.perf_counter() - t0, flush=True)


def steps(network, rule, optimizer, x: np.ndarray, labels: np.ndarray, n: int) -> None:
    for _ in range(n):
        train_step(network, rule, optimizer, MSELoss(), x, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed turn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        with threadpool_limits(args.threads):
            torch_worker(args.torch_worker, args.steps, args.threads)
        return
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (128, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    with threadpool_limits(args.threads):
        print(machine_header())
    print(f"MNIST-shaped batch 128, {args.threads} threads, {args.steps} steps per turn, "
          f"{args.repeats} repeats: ms per step, median (min-max)\n")  # fmt: skip
    print("| variant | ours ms (BP) | torch ms | ours/torch | our epoch s (468 steps) "
          "| DFA/BP | DRTP/BP |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        worker = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", name, "--steps", str(args.steps),
             "--threads", str(args.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None and worker.stdin is not None
        worker.stdout.readline()
        trainers = {}
        for rule_name in RULE_NAMES:
            network = classifier(
                (28, 28, 1), HIDDEN, 10, conv=CONV, rng=np.random.default_rng(1), **variant
            )
            rule = RULES.get(rule_name)(network, np.random.default_rng(2))
            trainers[rule_name] = (network, rule, SGD(network.parameters(), 1e-5))
        ours: dict[str, list[float]] = {rule_name: [] for rule_name in RULE_NAMES}
        theirs = []
        with threadpool_limits(args.threads):
            for trainer in trainers.values():
                train_step(*trainer, MSELoss(), x, labels)  # warm up
            for repeat in range(args.repeats):
                worker.stdin.write("step\n")
                worker.stdin.flush()
                theirs.append(float(worker.stdout.readline()) / args.steps)
                order = RULE_NAMES if repeat % 2 == 0 else RULE_NAMES[::-1]
                for rule_name in order:
                    seconds = timed(steps, *trainers[rule_name], x, labels, args.steps)
                    ours[rule_name].append(seconds / args.steps)
        worker.stdin.close()
        worker.wait()
        bp = ours["GD"]
        print(
            f"| {name} | {spread(bp, 0, 1e3)} | {spread(theirs, 0, 1e3)} "
            f"| {spread(paired(bp, theirs))} | {statistics.median(bp) * 468:.0f} "
            f"| {spread(paired(ours['DFA'], bp))} | {spread(paired(ours['DRTP'], bp))} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
