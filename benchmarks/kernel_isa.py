"""The vector width of the numba kernels as compiled on this machine.

numba compiles for the CPU it runs on (``NUMBA_CPU_NAME`` unset: the host's, e.g. ``znver3``
or ``skylake-avx512``), so a kernel uses 256-bit ``ymm`` registers on an AVX2 machine and may
use 512-bit ``zmm`` ones where AVX-512 exists. This script runs a few training steps (an MLP
and a binary convnet and residual net, SGD and Adam) so that the kernels compile for the
types training uses, then reads each compiled loop's assembly and prints, per kernel and
signature, the widest vector register its floating-point arithmetic uses and how many such
instructions it has::

    python benchmarks/kernel_isa.py

A loop whose arithmetic stays on ``xmm`` did not vectorise (scalar SSE) — the thing to look
for. Not part of the test suite.
"""

from __future__ import annotations

import os
import re
import tempfile
from types import ModuleType

# compiled here, not loaded from numba's cache: only a loop compiled in this process shows
# its assembly (set before numba is imported)
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernel-isa-")

import numpy as np
from timing import machine_header

from binary_nn import RULES, classifier, train_step
from binary_nn.learning.loss import LOSSES
from binary_nn.learning.optim import OptimizerSettings, make_optimizer
from binary_nn.nn.kernels import NUMBA, kernels_named

#: packed floating-point arithmetic (AT&T syntax, as LLVM prints it)
VECTOR_OP = re.compile(
    r"\bv(?:add|sub|mul|div|sqrt|max|min|fmadd\w*|fnmadd\w*|fmsub\w*|cmp\w*|blendv|and|andn|or|"
    r"xor)p[sd]\b[^\n]*%([xyz])mm"
)
WIDTH = {"x": "xmm (128)", "y": "ymm (256)", "z": "zmm (512)"}


def train_a_little() -> None:
    """A few steps of the networks and optimizers training uses, so that the kernels compile."""
    kernels = kernels_named("numba")
    rng = np.random.default_rng(0)
    binary = dict(batch_norm=True, binarize=True, hidden_activation="signsat")
    cases = [
        ((64,), dict(hidden=[32, 16]), "GD", "sgd"),
        ((64,), dict(hidden=[32], **binary), "DFA", "adam"),
        ((8, 8, 1), dict(hidden=[16], conv="8c3,mp2", **binary), "DRTP", "adam"),
        ((8, 8, 1), dict(hidden=[], conv="8c3,r8c3,mp2,r16c3,gap", **binary), "GD", "sgd"),
    ]
    for dtype in (np.float32, np.float64):
        for shape, net, rule_name, optimizer_name in cases:
            network = classifier(shape, n_classes=4, dtype=dtype, rng=rng, kernels=kernels, **net)
            rule = RULES.get(rule_name)(network, np.random.default_rng(1))
            settings = OptimizerSettings(lr=1e-3, weight_clipping=1.0)
            optimizer = make_optimizer(
                optimizer_name, network.named_parameters(), settings, kernels
            )
            x = rng.normal(size=(16, *shape)).astype(dtype)
            labels = rng.integers(0, 4, 16)
            for _ in range(2):
                train_step(network, rule, optimizer, LOSSES.get("mse"), x, labels)


def dispatchers(module: ModuleType) -> dict[str, object]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if type(obj).__name__ == "CPUDispatcher" and getattr(obj, "signatures", None)
    }


def main() -> None:
    if NUMBA is None:
        raise SystemExit("numba is not installed: pip install -e '.[fast]'")
    from binary_nn.nn.kernels import (
        batchnorm,
        bits,
        elementwise,
        patches,
        pooling,
        statistics,
        updates,
    )

    train_a_little()
    print(machine_header())
    print("| kernel | array dtype | widest register of its vector arithmetic | instructions |")
    print("|---|---|---|---|")
    for module in (elementwise, batchnorm, updates, statistics, pooling, patches, bits):
        for name, dispatcher in sorted(dispatchers(module).items()):
            for signature in dispatcher.signatures:  # type: ignore[attr-defined]
                asm = dispatcher.inspect_asm(signature)  # type: ignore[attr-defined]
                widths = [m.group(1) for m in VECTOR_OP.finditer(asm)]
                widest = max(widths, key="xyz".index) if widths else None
                count = sum(1 for w in widths if w == widest)
                kinds = next((str(t.dtype) for t in signature if hasattr(t, "dtype")), "-")
                shown = WIDTH[widest] if widest else "none (no packed float arithmetic)"
                where = f"{module.__name__.rsplit('.', 1)[1]}.{name}"
                print(f"| {where} | {kinds} | {shown} | {count} |")


if __name__ == "__main__":
    main()
