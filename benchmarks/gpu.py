"""Epoch times on a GPU: our torch backend, the same net written in PyTorch, and our CPU path;
and the wall time of a campaign of runs sharing the GPU.

For each variant (the published MLP 784-700-500-300-200-10 with tanh and real weights, with
signsat, binary weights and batch norm; the binary convnet ``32c5,mp2,64c5,mp2`` + 1000) and
rule, a few hundred steps are timed (the GPU synchronised around them) on MNIST-shaped
synthetic data held on the device, and scaled to an epoch of 60,000 examples at batch 128.
PyTorch's version is backpropagation as its users write it (``nn.Linear``/``F.conv2d``,
straight-through signs, ``torch.optim.SGD``), on the same device. The campaign runs
``--campaign-runs`` one-epoch runs of the binary MLP through ``repeat --runs-per-gpu``, and
projects the published grid search (72 runs x 100 epochs) from its wall time::

    python benchmarks/gpu.py                      # on a machine with a CUDA GPU
    python benchmarks/gpu.py --device cpu --steps 5 --cpu-steps 2 --campaign-runs 2  # a dry run

Prints one markdown table. It finishes within about 8 minutes on one H200.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from binary_nn import RULES, SGD, MSELoss, classifier, train_step
from binary_nn.data import Dataset
from binary_nn.nn.kernels import default_kernels
from binary_nn.nn.kernels.array_api import TorchKernels
from binary_nn.run.device_data import DeviceData

BATCH, N_TRAIN = 128, 60_000
HIDDEN = (700, 500, 300, 200)
CONV = "32c5,mp2,64c5,mp2"
VARIANTS = {
    "MLP tanh, real": dict(hidden=HIDDEN),
    "MLP signsat, binary, bn": dict(
        hidden=HIDDEN, hidden_activation="signsat", binarize=True, batch_norm=True
    ),
    "convnet signsat, binary, bn": dict(
        hidden=(1000,), conv=CONV, hidden_activation="signsat", binarize=True, batch_norm=True
    ),
}
RULE_NAMES = ("GD", "DFA", "DRTP")


def seconds_per_step(step: Callable[[int], None], steps: int, sync: Callable[[], None]) -> float:
    """Seconds per call of ``step(k)`` over ``steps`` calls, after 3 to warm up (kernels
    compiled, memory pools filled), the device synchronised before each clock reading."""
    for k in range(3):
        step(k)
    sync()
    started = time.perf_counter()
    for k in range(steps):
        step(k)
    sync()
    return (time.perf_counter() - started) / steps


def synthetic(images: bool) -> Dataset:
    rng = np.random.default_rng(0)
    shape = (28, 28, 1) if images else (784,)
    return Dataset(
        "synthetic-mnist",
        rng.integers(0, 256, (N_TRAIN, *shape), dtype=np.uint8),
        rng.integers(0, 10, N_TRAIN),
        rng.integers(0, 256, (1000, *shape), dtype=np.uint8),
        rng.integers(0, 10, 1000),
    )


def synchronise(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def ours(variant: dict, rule: str, kernels, steps: int, sync: Callable[[], None]) -> float:
    """Seconds per step of our train_step on ``kernels``, batches gathered on the device."""
    images = "conv" in variant
    data = DeviceData(synthetic(images), kernels, np.float32)
    net = classifier(data.dataset.input_shape, n_classes=10, init=0.1, kernels=kernels,
                     rng=np.random.default_rng(1), **variant)  # fmt: skip
    learning = RULES.get(rule)(net, np.random.default_rng(2))
    optimizer = SGD(net.parameters(), 1e-5, 1.0, kernels=kernels)
    order = np.random.default_rng(3).permutation(N_TRAIN)

    def step(k: int) -> None:
        index = order[(k * BATCH) % (N_TRAIN - BATCH) :][:BATCH]
        train_step(net, learning, optimizer, MSELoss(), data.batch(index), data.batch_labels(index))

    return seconds_per_step(step, steps, sync)


def pytorch(variant: dict, device: str, steps: int, sync: Callable[[], None]) -> float:
    """Seconds per step of the same net as a PyTorch user writes it (backpropagation)."""
    import torch
    import torch.nn.functional as F

    binary, bn = variant.get("binarize", False), variant.get("batch_norm", False)
    signsat = variant.get("hidden_activation") == "signsat"

    def ste(w):
        return w + (torch.where(w > 0, 1.0, -1.0) - w).detach()

    def act(a):
        if not signsat:
            return torch.tanh(a)
        passed = a * (a.abs() < 1)
        return passed + (torch.where(a > 0, 1.0, -1.0) - passed).detach()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = "conv" in variant
            convs = [(1, 32), (32, 64)] if self.conv else []
            self.convs = torch.nn.ModuleList(
                torch.nn.Conv2d(i, o, 5, padding=2, bias=False) for i, o in convs
            )
            self.conv_norms = torch.nn.ModuleList(
                torch.nn.BatchNorm2d(o, eps=1e-3) if bn else torch.nn.Identity() for _, o in convs
            )
            sizes = [3136 if self.conv else 784, *variant["hidden"], 10]
            self.linears = torch.nn.ModuleList(
                torch.nn.Linear(i, o, bias=False) for i, o in itertools.pairwise(sizes)
            )
            self.norms = torch.nn.ModuleList(
                torch.nn.BatchNorm1d(o, eps=1e-3) if bn else torch.nn.Identity()
                for o in variant["hidden"]
            )

        def forward(self, x):
            for conv, norm in zip(self.convs, self.conv_norms, strict=True):
                w = ste(conv.weight) if binary else conv.weight
                x = act(norm(F.max_pool2d(F.conv2d(x, w, padding=2), 2)))
            x = x.flatten(1)
            for k, linear in enumerate(self.linears):
                hidden = k < len(self.norms)
                w = ste(linear.weight) if binary and hidden else linear.weight
                x = F.linear(x, w)
                x = act(self.norms[k](x)) if hidden else torch.tanh(x)
            return x

    net = Net().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-5)
    images = "conv" in variant
    raw = synthetic(images)
    x_all = torch.as_tensor(raw.x_train, device=device)
    if images:
        x_all = x_all.permute(0, 3, 1, 2)
    t_all = F.one_hot(torch.as_tensor(raw.y_train, device=device), 10).float() * 2 - 1
    order = torch.randperm(N_TRAIN, device=device)

    def step(k: int) -> None:
        index = order[(k * BATCH) % (N_TRAIN - BATCH) :][:BATCH]
        x = x_all[index].float() / 127.5 - 1
        loss = F.mse_loss(net(x), t_all[index], reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return seconds_per_step(step, steps, sync)


def campaign(runs: int, runs_per_gpu: int, device: str) -> float:
    """Wall seconds of ``runs`` one-epoch runs of the binary MLP through ``repeat``."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synthetic.npz"
        d = synthetic(False)
        np.savez(data, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
        settings = Path(tmp) / "grid.yaml"
        settings.write_text(
            f"name: gpu-campaign\ndataset: {data}\nseeds: 1..{runs}\n"
            "fixed: {hidden: '700,500,300,200', bn: true, binarize: true, "
            "hidden_act: signsat, epochs: 1, lr: 1.0e-4, weight_clipping: 1}\n"
            "settings: [{method: DRTP}]\n"
        )
        command = [sys.executable, "-m", "binary_nn.repeat", str(settings), "--out",
                   str(Path(tmp) / "out"), "--no-progress"]  # fmt: skip
        if device.startswith("cuda"):
            command += ["--runs-per-gpu", str(runs_per_gpu)]
        else:  # a dry run on the CPU
            command += ["--processes", "1"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200, help="timed GPU steps per row")
    parser.add_argument("--cpu-steps", type=int, default=10, help="timed CPU steps per row")
    parser.add_argument("--campaign-runs", type=int, default=16)
    parser.add_argument("--runs-per-gpu", type=int, default=8)
    args = parser.parse_args()
    sync = synchronise(args.device)
    gpu, cpu = TorchKernels(args.device), default_kernels()
    per_epoch = N_TRAIN // BATCH
    print(f"device {args.device}; epoch = {per_epoch} steps of {BATCH}; seconds per epoch\n")
    print("| variant | rule | ours, GPU | PyTorch, GPU | ours / PyTorch | ours, CPU "
          "| CPU / GPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, variant in VARIANTS.items():
        torch_epoch = pytorch(variant, args.device, args.steps, sync) * per_epoch
        for rule in RULE_NAMES:
            on_gpu = ours(variant, rule, gpu, args.steps, sync) * per_epoch
            on_cpu = ours(variant, rule, cpu, args.cpu_steps, lambda: None) * per_epoch
            shown = f"{torch_epoch:.2f} | {on_gpu / torch_epoch:.2f}" if rule == "GD" else "|"
            print(f"| {name} | {rule} | {on_gpu:.2f} | {shown} | {on_cpu:.1f} "
                  f"| {on_cpu / on_gpu:.1f} |", flush=True)  # fmt: skip
    wall = campaign(args.campaign_runs, args.runs_per_gpu, args.device)
    grid = 72 * 100 * wall / args.campaign_runs
    print(f"\ncampaign: {args.campaign_runs} one-epoch runs of the binary MLP (DRTP), "
          f"{args.runs_per_gpu} per GPU: {wall:.0f} s wall; the published grid (72 runs x "
          f"100 epochs) at that rate: {grid / 3600:.2f} h")  # fmt: skip


if __name__ == "__main__":
    main()
