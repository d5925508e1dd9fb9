"""``python -m binary_nn.predict MODEL --dataset NAME``: run an exported model on a test set.

Prints the accuracy, images per second and the model's size; ``--predictions FILE.npy`` saves
the predicted classes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cli import ArgumentParser, describe, run_cli
from .data import load_dataset
from .deploy.engine import Engine
from .deploy.packed import PackedModel, load_packed
from .errors import ConfigError
from .files import claim_output, write_bytes_atomic

PROG = "binary_nn.predict"


def integer_pixels(x: np.ndarray, model: PackedModel) -> np.ndarray:
    """Examples as the integer pixels the model takes: uint8 as stored, or floats scaled back
    (``p = (x + 1) * input_divisor``) when they hold integers that way."""
    flat = x.reshape(len(x), -1)
    if flat.dtype == np.uint8:
        return flat
    pixels = np.rint((flat.astype(np.float64) + 1) * model.input_divisor)
    if not np.allclose((pixels / model.input_divisor) - 1, flat, atol=1e-9):
        raise ConfigError(
            f"the dataset's inputs are not integer pixels scaled by 1/{model.input_divisor:g}; "
            "the model takes uint8 pixels"
        )
    return pixels.astype(np.uint8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    parser.add_argument("model", help="a model.npz written by python -m binary_nn.export")
    parser.add_argument("-d", "--dataset", default="digits", help="dataset name or PATH.npz")
    parser.add_argument("--data-dir", default=None, help="where dataset files are looked for")
    parser.add_argument("--predictions", metavar="FILE.npy", help="save the predicted classes")

    def job() -> int:
        args = parser.parse_args(argv)
        if args.predictions:
            claim_output(args.predictions, "--predictions")
        model = load_packed(args.model)
        dataset = load_dataset(args.dataset, args.data_dir)
        pixels = integer_pixels(dataset.x_test, model)
        if pixels.shape[1] != model.n_inputs:
            raise ConfigError(
                f"the model takes {model.n_inputs} pixels per image but {args.dataset} has "
                f"{pixels.shape[1]}"
            )
        engine = Engine(model)
        engine.predict(pixels[:8])  # compile (or load) the kernels before timing
        t0 = time.perf_counter()
        predicted = engine.predict(pixels)
        seconds = time.perf_counter() - t0
        accuracy = float(np.mean(predicted == dataset.y_test)) if len(predicted) else 0.0
        print(
            f"{len(predicted)} test images: accuracy {accuracy:.4f}, "
            f"{len(predicted) / seconds:,.0f} images/s, model {model.nbytes():,} bytes "
            f"({sum(layer.packed for layer in model.layers)} of {len(model.layers)} layers packed)"
        )
        if args.predictions:
            import io

            buffer = io.BytesIO()
            np.save(buffer, predicted.astype(np.int64))
            write_bytes_atomic(Path(args.predictions), buffer.getvalue())
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
