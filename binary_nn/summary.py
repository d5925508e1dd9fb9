"""``python -m binary_nn.summary [the model flags of train]``: what a network is made of, and
what learning it costs per rule.

Prints two tables (per layer: shape, parameters, bits, bytes stored and bit-packed, forward
MACs and the binary x binary share; per rule: forward and backward MACs, held activations,
feedback bytes, totals against GD), counted by ``binary_nn.learning.cost``; ``--json FILE``
writes them too. A registered dataset is described without loading it::

    python -m binary_nn.summary --dataset MNIST --hidden 700,500,300,200 --bn --binarize
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import describe, run_cli
from .data import DATASETS, load_dataset
from .deploy.c_learn import device_table
from .deploy.online import check_network
from .errors import ConfigError
from .files import claim_output, write_json_atomic
from .learning.cost import cost_summary, render
from .nn.network import Network
from .options import build_parser, parsed_values
from .run import memory
from .run.architecture import build_network
from .run.build import make_optimizer_for
from .run.config import TrainConfig

PROG = "binary_nn.summary"


def _shape(config: TrainConfig) -> tuple[tuple[int, ...], int]:
    if config.dataset in DATASETS and not str(config.dataset).lower().endswith(".npz"):
        source = DATASETS.get(config.dataset)
        return source.input_shape, source.n_classes
    dataset = load_dataset(config.dataset, config.data_dir)
    return dataset.input_shape, dataset.n_classes


def device_sizes(network: Network) -> list[tuple[int, int]] | None:
    """The layer sizes of a network the device learner runs (None for any other)."""
    try:
        check_network(network, "DFA")
    except ConfigError:
        return None
    return [(block.weight_layer.fan_in, block.output_size) for block in network.blocks]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        TrainConfig, PROG, describe(__doc__), groups=("data", "model", "learning")
    )
    parser.add_argument("--json", metavar="FILE", help="also write both tables as JSON")

    def job() -> int:
        args = parsed_values(parser, sys.argv[1:] if argv is None else argv)
        json_path = args.pop("json")
        if json_path:
            claim_output(json_path, "--json")
        config = TrainConfig(**args).resolved()
        input_shape, n_classes = _shape(config)
        # shape only: described at any size without the memory it would take
        network = build_network(config, input_shape, n_classes, shape_only=True)
        state = make_optimizer_for(config, network).state_size()
        summary = cost_summary(network, state)
        needed = memory.estimate(network, config.batchsize, config.streaming, state)
        summary["memory"] = {"batchsize": config.batchsize, "training_bytes": needed.total}
        print(render(summary, network.describe()), end="")
        print(f"\nTraining in batches of {config.batchsize} needs {needed.describe()}.")
        sizes = device_sizes(network)
        if sizes is not None:
            print(
                "\nLearning on a microcontroller (export --format c --learn: 16-bit latent "
                "weights, one example a step, running statistics), RAM in bytes before the "
                "stack:\n"
            )
            print(device_table(sizes), end="")
            summary["device"] = {"sizes": sizes}
        if json_path:
            write_json_atomic(Path(json_path), {"architecture": network.describe(), **summary})
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
