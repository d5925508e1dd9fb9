"""Packed XNOR/popcount inference against the float32 network, on a trained checkpoint.

A residual network (``r{C}c{K}`` units, ``gap``) is checked and timed the same way, without
the PyTorch twin (a chain only).

Exports the checkpoint (a fully binary net is the point: ``--binarize --binarize_last``),
checks that the packed engine (numba and numpy) and the compiled C model predict what the
float64 network predicts on every test image, and times, taking turns, same threads:

- batch 1: the packed engine's latency against the float32 numpy forward;
- batch 10,000: throughput of both;
- the binary hidden layers alone against float32 products of the same shapes.

Prints one markdown table::

    python -m binary_nn.train -d MNIST --data-dir ~/data -m DFA --bn --binarize \\
        --binarize_last --hidden-act signsat --init 0.001 --lr 1e-4 --weight-clipping 1 \\
        --hidden 700,500,300,200 -e 5 --seed 1 --save mnist_binary.npz
    python benchmarks/inference.py mnist_binary.npz --data-dir ~/data

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from timing import taking_turns

from binary_nn.data import load_dataset
from binary_nn.deploy.c_code import c_model
from binary_nn.deploy.c_residual import has_residual_stages, residual_c_model
from binary_nn.deploy.engine import Engine
from binary_nn.deploy.packed import pack_network
from binary_nn.nn import kernels
from binary_nn.nn.kernels.bits import pack_bits
from binary_nn.predict import integer_pixels
from binary_nn.run.checkpoint import network_from_checkpoint, pixel_divisor
from binary_nn.run.probes import predict as float_predict

DRIVER = r"""#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#include "model.h"
int main(void) {
    static uint8_t images[10000][BNN_INPUTS];
    size_t n = fread(images, BNN_INPUTS, 10000, stdin);
    struct timespec t0, t1;
    static int out[10000];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; ++i) out[i] = bnn_predict(images[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (size_t i = 0; i < n; ++i) printf("%d\n", out[i]);
    fprintf(stderr, "%.9f\n", (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    return 0;
}
"""


def turns(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, the functions taking turns every repeat."""
    times = taking_turns(functions, repeats)
    return {name: statistics.median(t) for name, t in times.items()}


def run_c(model, pixels: np.ndarray) -> tuple[np.ndarray, float, object]:
    code = residual_c_model(model) if has_residual_stages(model) else c_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "model.h").write_text(code.header)
        (out / "model.c").write_text(code.source)
        (out / "driver.c").write_text(DRIVER)
        subprocess.run(
            ["cc", "-std=c99", "-O2", "-march=native", f"-I{out}", str(out / "driver.c"),
             str(out / "model.c"), "-o", str(out / "driver")],
            check=True,
        )  # fmt: skip
        result = subprocess.run(
            [str(out / "driver")], input=pixels.tobytes(), capture_output=True, check=True
        )
    return np.array(result.stdout.split(), dtype=int), float(result.stderr), code


def torch_twin(model, x32: np.ndarray, threads: int):
    """The same network's float32 forward in PyTorch (no_grad, ``threads`` threads), or None
    without torch: convolutions, max-pools, batch norm (folded), sign, dense layers."""
    if has_residual_stages(model):  # a chain only
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    modules = []
    for conv in model.convs:
        modules.append(torch.nn.Conv2d(conv.shape_in[2], conv.c_out, conv.k,
                                       padding=conv.k // 2, bias=False))  # fmt: skip
        if conv.pool > 1:
            modules.append(torch.nn.MaxPool2d(conv.pool))
        modules += [torch.nn.BatchNorm2d(conv.c_out).eval(), Sign()]
    if model.convs:
        modules.append(torch.nn.Flatten())
    for k, layer in enumerate(model.layers):
        modules.append(torch.nn.Linear(layer.n_in, layer.n_out, bias=False))
        if k + 1 < len(model.layers):
            modules += [torch.nn.BatchNorm1d(layer.n_out).eval(), Sign()]
    net = torch.nn.Sequential(*modules).eval()
    shape = model.convs[0].shape_in if model.convs else (model.n_inputs,)
    x = torch.from_numpy(np.ascontiguousarray(x32.reshape(len(x32), *shape)))
    if model.convs:
        x = x.permute(0, 3, 1, 2).contiguous()  # channels first, as PyTorch's convolutions

    def forward() -> None:
        with torch.no_grad():
            net(x).argmax(dim=1)

    return forward


class Sign:
    """``torch.sign`` as a module (built lazily: torch is optional)."""

    def __new__(cls):
        import torch

        class _Sign(torch.nn.Module):
            def forward(self, x):
                return torch.where(x > 0, 1.0, -1.0)

        return _Sign()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir")
    parser.add_argument("--dataset", default="MNIST")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000, help="the throughput's batch")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.data_dir)
    reference_net, config = network_from_checkpoint(args.checkpoint, "float64")
    float_net, _ = network_from_checkpoint(args.checkpoint, "float32")
    model = pack_network(reference_net, pixel_divisor(args.checkpoint, config))
    pixels = integer_pixels(dataset.x_test, model)
    x32 = dataset.scale(dataset.x_test, np.float32)
    rows = []
    with threadpool_limits(args.threads):
        reference = float_predict(reference_net, dataset, "test")
        engine = Engine(model)
        checks = {}
        for backend in ("numba", "numpy"):
            if backend == "numba" and kernels.NUMBA is None:
                continue
            engine_of = Engine(model, kernels.kernels_named(backend))
            checks[f"packed engine ({backend})"] = engine_of.predict(pixels)
        if shutil.which("cc"):
            from_c, c_seconds, code = run_c(model, pixels)
            checks["C model"] = from_c
        for name, predicted in checks.items():
            bad = np.flatnonzero(predicted != reference)
            accuracy = np.mean(predicted == dataset.y_test)
            rows.append(
                f"| predictions: {name} | {len(bad)} of {len(pixels)} differ from float64 "
                f"| accuracy {accuracy:.4f} |"
            )
        size = model.nbytes()
        float_bytes = 4 * sum(layer.weight.size for layer in float_net.weight_layers())
        rows.append(
            f"| model size | {size:,} bytes packed against {float_bytes:,} float32 | "
            f"1/{float_bytes / size:.1f} |"
        )
        if shutil.which("cc"):
            rows.append(
                f"| C model | flash {code.flash_bytes:,} bytes, RAM {code.ram_bytes:,} bytes "
                f"| {c_seconds / len(pixels) * 1e6:.1f} µs per image (-O2 -march=native) |"
            )
        engine.predict(pixels[:1])
        one = turns(
            {
                "packed": lambda: engine.predict(pixels[:1]),
                "float32": lambda: float_net.forward(x32[:1], train=False).argmax(axis=1),
            },
            args.repeats * 200,
        )
        rows.append(
            f"| batch 1 latency | packed {one['packed'] * 1e6:.1f} µs, float32 "
            f"{one['float32'] * 1e6:.1f} µs | packed/float32 {one['packed'] / one['float32']:.3f} |"
        )
        batch, xb = pixels[: args.batch], x32[: args.batch]
        contenders = {
            "packed": lambda: engine.predict(batch),
            "float32": lambda: float_net.forward(xb, train=False).argmax(axis=1),
        }
        torch_forward = torch_twin(model, xb, args.threads)
        if torch_forward is not None:
            contenders["torch"] = torch_forward
        many = turns(contenders, args.repeats)
        n = len(batch)
        rows.append(
            f"| batch {n:,} throughput | packed {n / many['packed']:,.0f} images/s, float32 "
            f"{n / many['float32']:,.0f} | packed/float32 {many['float32'] / many['packed']:.2f}x |"
        )
        if "torch" in many:
            rows.append(
                f"| batch {n:,} throughput, PyTorch no_grad float32 | torch "
                f"{n / many['torch']:,.0f} images/s | packed/torch "
                f"{many['torch'] / many['packed']:.2f}x |"
            )
        # the binary hidden layers alone (XNOR-popcount, thresholds, packed output bits, as the
        # engine runs them) against float32 products of the same shapes
        binary = [
            k
            for k, layer in enumerate(model.layers)
            if layer.kind == "binary" and layer.output == "bits"
        ]
        rng = np.random.default_rng(0)
        inputs = {k: pack_bits(rng.choice([-1, 1], (n, model.layers[k].n_in)), 0) for k in binary}
        floats = {k: rng.choice([-1.0, 1.0], (n, model.layers[k].n_in)).astype(np.float32)
                  for k in binary}  # fmt: skip
        weights = {k: rng.standard_normal((model.layers[k].n_in, model.layers[k].n_out))
                   .astype(np.float32) for k in binary}  # fmt: skip

        def packed_layers() -> None:
            for k in binary:
                layer = model.layers[k]
                engine._threshold_layer(layer, engine._prepared[k], inputs[k], True, False, True)

        def float_layers() -> None:
            for k in binary:
                floats[k] @ weights[k]

        if binary:  # a residual net's stages are not dense layers
            hidden = turns({"packed": packed_layers, "float32": float_layers}, args.repeats)
            macs = sum(model.layers[k].n_in * model.layers[k].n_out for k in binary) * n
            rows.append(
                f"| binary hidden layers alone ({len(binary)}, batch {n:,}) | packed "
                f"{macs / hidden['packed'] / 1e9:.0f} G binary MAC/s, float32 "
                f"{macs / hidden['float32'] / 1e9:.0f} G MAC/s | packed/float32 "
                f"{hidden['float32'] / hidden['packed']:.2f}x |"
            )
    print(
        f"{reference_net.describe()} on {dataset.name} test ({len(pixels):,} images), "
        f"{args.threads} BLAS threads, numba kernels in one thread; medians of turns\n"
    )
    print("| what | measured | against |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
