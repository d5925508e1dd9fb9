"""Training-step time of a convnet against the same net in PyTorch on the CPU, same threads.

The bundled convnet (``--conv 32c5,mp2,64c5,mp2 --hidden 1000``) or, with ``--net resnet``,
the small binary ResNet of the ``resnet_*_adam`` settings (Bi-Real units, built in PyTorch from
the same ``--conv`` spec); batch 128, float32, bias-free, MSE summed, plain SGD; BP on real
weights with tanh, and on binary weights with signsat and batch norm (straight-through in
PyTorch), on MNIST-shaped data. PyTorch runs in its own
process; its steps and ours take turns, and every ratio is formed within a turn::

    pip install torch==2.13.0
    python benchmarks/conv_time.py --steps 20 --repeats 5
    python benchmarks/conv_time.py --steps 20 --repeats 5 --net resnet

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
from binary_nn.nn.network import parse_conv

RULE_NAMES = ("GD", "DFA", "DRTP")

#: the networks, as --conv and --hidden give them
NETS = {
    "convnet": ("32c5,mp2,64c5,mp2", (1000,)),
    "resnet": ("16c3,r16c3,r16c3,mp2,r32c3,r32c3,mp2,r64c3,r64c3,gap", ()),
}
VARIANTS = {
    "tanh, real": {},
    "signsat, binary, bn": {"batch_norm": True, "binarize": True, "hidden_activation": "signsat"},
}


def torch_worker(variant_name: str, net_name: str, steps: int, threads: int) -> None:
    """Serve ``step`` requests on stdin: ``steps`` PyTorch steps each, their seconds out."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    variant = VARIANTS[variant_name]
    conv, hidden = NETS[net_name]
    binary, bn = variant.get("binarize", False), variant.get("batch_norm", False)
    signsat = variant.get("hidden_activation") == "signsat"

    def sign_ste(w):
        return w + (torch.where(w > 0, 1.0, -1.0) - w).detach()

    def act(a):
        if signsat:
            passed = a * (a.abs() < 1)
            return passed + (torch.where(a > 0, 1.0, -1.0) - passed).detach()
        return torch.tanh(a)

    def weight(layer):
        return sign_ste(layer.weight) if binary else layer.weight

    def norm(channels):
        return torch.nn.BatchNorm2d(channels, eps=1e-3) if bn else torch.nn.Identity()

    class Unit(torch.nn.Module):
        """One token of the --conv spec, as binary_nn builds it (see ``classifier``)."""

        def __init__(self, kind, c_in, c_out, k):
            super().__init__()
            self.kind, self.k, self.pool = kind, k, 1
            self.conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
            self.norm = norm(c_out)
            projected = kind == "residual" and c_in != c_out
            self.project = torch.nn.Conv2d(c_in, c_out, 1, bias=False) if projected else None
            self.project_norm = norm(c_out) if projected else None

        def pooled(self, a, average=False):
            if self.pool == 1:
                return a
            return F.avg_pool2d(a, self.pool) if average else F.max_pool2d(a, self.pool)

        def forward(self, x):
            if self.kind == "conv":  # conv -> [max-pool] -> [bn] -> activation
                return act(
                    self.norm(self.pooled(F.conv2d(x, weight(self.conv), padding=self.k // 2)))
                )
            path = self.norm(self.pooled(F.conv2d(act(x), weight(self.conv), padding=self.k // 2)))
            shortcut = self.pooled(x, average=True)
            if self.project is not None:  # a real-valued 1x1 projection
                shortcut = self.project_norm(F.conv2d(shortcut, self.project.weight))
            return path + shortcut

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            units, channels, size, self.gap = [], 1, 28, False
            for kind, c, k in parse_conv(conv):
                if kind == "pool":
                    units[-1].pool, size = c, size // c
                elif kind == "gap":
                    self.gap = True
                else:
                    units.append(Unit(kind, channels, c, k))
                    channels = c
            self.units = torch.nn.ModuleList(units)
            width = channels if self.gap else channels * size * size
            self.dense = torch.nn.ModuleList()
            self.dense_norms = torch.nn.ModuleList()
            for n in hidden:
                self.dense.append(torch.nn.Linear(width, n, bias=False))
                self.dense_norms.append(
                    torch.nn.BatchNorm1d(n, eps=1e-3) if bn else torch.nn.Identity()
                )
                width = n
            self.out = torch.nn.Linear(width, 10, bias=False)

        def forward(self, x):
            for unit in self.units:
                x = unit(x)
            x = x.mean(dim=(2, 3)) if self.gap else x.permute(0, 2, 3, 1).flatten(1)
            for layer, batch_norm in zip(self.dense, self.dense_norms, strict=True):
                x = act(batch_norm(F.linear(x, weight(layer))))
            return torch.tanh(self.out(x))

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
    parser.add_argument("--net", choices=list(NETS), default="convnet",
                        help="the bundled convnet, or the small binary ResNet of the "
                        "resnet_*_adam settings")  # fmt: skip
    parser.add_argument("--torch-worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        with threadpool_limits(args.threads):
            torch_worker(args.torch_worker, args.net, args.steps, args.threads)
        return
    conv, hidden = NETS[args.net]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (128, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    with threadpool_limits(args.threads):
        print(machine_header())
    sizes = ",".join(map(str, hidden)) or "''"
    print(f"--conv {conv} --hidden {sizes}: MNIST-shaped batch "
          f"128, {args.threads} threads, {args.steps} steps per turn, {args.repeats} repeats: "
          "ms per step, median (min-max)\n")  # fmt: skip
    print("| variant | ours ms (BP) | torch ms | ours/torch | our epoch s (468 steps) "
          "| DFA/BP | DRTP/BP |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        worker = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", name, "--net", args.net, "--steps",
             str(args.steps), "--threads", str(args.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None and worker.stdin is not None
        worker.stdout.readline()
        trainers = {}
        for rule_name in RULE_NAMES:
            network = classifier(
                (28, 28, 1), hidden, 10, conv=conv, rng=np.random.default_rng(1), **variant
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
