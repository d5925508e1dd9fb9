"""The cost of learning, measured beside what ``python -m binary_nn.summary`` predicts.

For each rule (GD, DFA, DRTP, streaming DRTP) on the published MLP (784-700-500-300-200-10,
float32, MNIST-shaped synthetic data), at batch 1, 128 and 4096: the time per training example
(median over steps, rules taking turns) and the memory of one training step, from numpy's
allocations as ``tracemalloc`` sees them:

- *held*: what is allocated when the backward work starts (for streaming DRTP: the most at
  any block's update), less the step's starting point: the activations kept from the
  forward pass, plus each binarized layer's ``sign(W)`` (a weight-sized copy, not per example),
  which is shown apart;
- *peak*: the most allocated at any moment of the step (temporaries included);

and the process's peak RSS. Prints one markdown table::

    python benchmarks/cost.py                 # tanh, real weights
    python benchmarks/cost.py --binary        # signsat, binary weights, batch norm

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from binary_nn import RULES, SGD, MSELoss, classifier, train_step
from binary_nn.learning.cost import held_values

HIDDEN = (700, 500, 300, 200)
RULE_NAMES = ("GD", "DFA", "DRTP", "DRTP (streaming)")


def make(rule_name: str, binary: bool, seed: int = 1):
    options = {"batch_norm": True, "binarize": True, "hidden_activation": "signsat"}
    network = classifier(784, HIDDEN, 10, init=0.1, rng=np.random.default_rng(seed),
                  **(options if binary else {}))  # fmt: skip
    streaming = rule_name.endswith("(streaming)")
    rule = RULES.get(rule_name.split()[0])(network, np.random.default_rng(2), streaming=streaming)
    return network, rule, SGD(network.parameters(), lr=1e-6)


class HeldProbe:
    """Samples tracemalloc's current size where the backward work starts: when the rule's
    backward begins (whole-network rules), or when a block releases (streaming); less the
    binarized layers' ``sign(W)`` copies alive then (all of them; streaming: that block's)."""

    def __init__(self, network, rule) -> None:
        self.samples: list[int] = []
        copies = [
            b.weight_layer.weight.value.nbytes if b.weight_layer.quantizer.binary else 0
            for b in network.blocks
        ]
        if rule.streaming:
            for block, copy in zip(network.blocks, copies, strict=True):
                release = block.release

                def wrapped(release=release, copy=copy) -> None:
                    self.sample(copy)
                    release()

                block.release = wrapped
        else:
            backward = rule.backward

            def wrapped_backward(*args, **kwargs):
                self.sample(sum(copies))
                return backward(*args, **kwargs)

            rule.backward = wrapped_backward

    def sample(self, copies: int) -> None:
        self.samples.append(tracemalloc.get_traced_memory()[0] - copies)


def measure_memory(rule_name: str, binary: bool, batch: int, rng) -> tuple[int, int]:
    """(held activations, peak) in bytes of a step that is handed a fresh copy of the batch
    (as the training loop hands its batch over), so that both count it."""
    network, rule, optimizer = make(rule_name, binary)
    x = rng.uniform(-1, 1, (batch, 784)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    train_step(network, rule, optimizer, MSELoss(), x, labels)  # allocate the lazy state
    probe = HeldProbe(network, rule)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        train_step(network, rule, optimizer, MSELoss(), x.copy(), labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(probe.samples) - start, peak - start


def time_per_example(
    binary: bool, batch: int, steps: int, rng
) -> tuple[dict[str, float], dict[str, float]]:
    """Per rule: the median seconds per example, and the median over the turns of its step's
    time over GD's step in the same turn."""
    runs = {name: make(name, binary) for name in RULE_NAMES}
    x = rng.uniform(-1, 1, (batch, 784)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    times: dict[str, list[float]] = {name: [] for name in RULE_NAMES}
    for network, rule, optimizer in runs.values():  # warm up
        train_step(network, rule, optimizer, MSELoss(), x, labels)
    for step in range(steps):
        order = RULE_NAMES if step % 2 else RULE_NAMES[::-1]
        for name in order:
            network, rule, optimizer = runs[name]
            t0 = time.perf_counter()
            train_step(network, rule, optimizer, MSELoss(), x, labels)
            times[name].append(time.perf_counter() - t0)
    per_example = {name: statistics.median(t) / batch for name, t in times.items()}
    # each step's time over GD's in the same turn: drifts of a shared machine cancel
    vs_gd = {
        name: statistics.median(a / b for a, b in zip(t, times["GD"], strict=True))
        for name, t in times.items()
    }
    return per_example, vs_gd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", action="store_true", help="signsat, binary weights, bn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,128,4096")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    network, _, _ = make("GD", args.binary)
    print(
        f"{network.describe()}, float32, {args.threads} threads. Measured activations = "
        "allocated when the backward work starts (streaming: the most at any block's update), "
        "less the step's start and the binarized layers' sign(W) copies; peak = the most "
        "allocated during the step; each step is handed a fresh copy of the batch, as the "
        "training loop hands its batch over. Times: median per "
        "example over the steps, rules taking turns; vs GD: the median over the turns of a "
        "step's time over GD's in the same turn.\n"
    )
    print(
        "| batch | rule | µs/example | vs GD | predicted held MB | measured activations MB "
        "| measured/predicted | peak MB | peak vs DFA |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for batch in map(int, args.batches.split(",")):
            steps = max(9, min(600, 60000 // batch))
            seconds, vs_gd = time_per_example(args.binary, batch, steps, rng)
            memory = {name: measure_memory(name, args.binary, batch, rng) for name in RULE_NAMES}
            for name in RULE_NAMES:
                streaming = name.endswith("(streaming)")
                held_mb = held_values(network, streaming) * batch * 4 / 1e6
                held, peak = memory[name]
                activations = held / 1e6
                print(
                    f"| {batch} | {name} | {seconds[name] * 1e6:.1f} "
                    f"| {vs_gd[name]:.3f} | {held_mb:.3f} | {activations:.3f} "
                    f"| {activations / held_mb:.3f} | {peak / 1e6:.2f} "
                    f"| {peak / memory['DFA'][1]:.3f} |",
                    flush=True,
                )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
