"""``python -m binary_nn.data {list,fetch,verify,pixels,records}``: prepare or check data.

Run ``fetch`` where there is internet (e.g. a login node); training jobs elsewhere then read the
same directory without network access. ``pixels`` writes a split's images as raw ``uint8``
bytes, one image after another in the layout the network reads (rows, columns, channels):
what the exported C programs read on their standard input. ``records`` writes the stream a
device learner reads (``export --learn``'s ``learn_example.c``, ``python -m binary_nn.device``):
training examples to learn, then test images to predict.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import ArgumentParser, describe, run_cli
from ..errors import ConfigError, DataError
from ..files import check_writable, write_bytes_atomic
from .dataset import Dataset
from .remote import check_local, data_home, ensure_files
from .sources import DATASETS, DatasetSource, load_dataset

PROG = "binary_nn.data"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=describe(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the known datasets and where their files would be")
    for name, text in (
        ("fetch", "download any missing file and verify it"),
        ("verify", "check every file's sha256, without network access"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("name", help=f"one of: {', '.join(DATASETS.names())}")
    pixels = commands.add_parser(
        "pixels", help="write a split's images as raw uint8 bytes (what the C programs read)"
    )
    pixels.add_argument("name", help=f"one of: {', '.join(DATASETS.names())}, or a PATH.npz")
    pixels.add_argument("--split", choices=("train", "test"), default="test")
    pixels.add_argument("--out", required=True, help="the file to write")
    pixels.add_argument("--labels", help="also write the labels, one uint8 each, to this file")
    records = commands.add_parser(
        "records",
        help="write a device learner's record stream: training images to learn (in a seeded "
        "shuffle), then test images to predict, then a state hash",
    )
    records.add_argument("name", help=f"one of: {', '.join(DATASETS.names())}, or a PATH.npz")
    records.add_argument("--out", required=True, help="the file to write")
    records.add_argument(
        "--learn", type=int, default=None, metavar="N",
        help="training examples to learn, in order of a seeded shuffle (default: all)",
    )  # fmt: skip
    records.add_argument(
        "--passes", type=int, default=1, help="passes over those examples (a new shuffle each)"
    )
    records.add_argument(
        "--test", type=int, default=None, metavar="N", help="test images to predict (default: all)"
    )
    records.add_argument("--seed", type=int, default=1, help="the shuffle's seed")
    records.add_argument(
        "--labels", help="also write the test labels, one uint8 each, to this file"
    )
    for sub in commands.choices.values():
        sub.add_argument(
            "--data-dir",
            default=None,
            help="data directory (default: $BINARY_NN_DATA, else the user cache)",
        )
    return parser


def file_state(source: DatasetSource, root: Path) -> str:
    """Whether a dataset's files are here and verify: what ``list`` shows."""
    if source.files is None:
        return "embedded"
    statuses = check_local(source.files, root)
    ok = sum(s.ok for s in statuses)
    if any(s.bad is not None and not s.ok for s in statuses):
        return "checksum mismatch"
    if ok == len(statuses):
        return "present, verified"
    return "missing" if ok == 0 else f"partial ({ok} of {len(statuses)})"


def write_pixels(
    name: str, data_dir: str | None, split: str, out: str, labels: str | None = None
) -> int:
    """Write the ``split`` images of dataset ``name`` as raw uint8 bytes to ``out`` (and its
    labels to ``labels``), atomically."""
    for path, flag in ((out, "--out"), (labels, "--labels")):
        if path:
            check_writable(path, flag)
    dataset = load_dataset(name, data_dir)
    images = dataset.x_train if split == "train" else dataset.x_test
    if images.dtype != np.uint8:
        raise DataError(
            f"{name} holds {images.dtype} inputs, not uint8 pixels: there are no raw pixels to "
            "write"
        )
    write_bytes_atomic(Path(out), np.ascontiguousarray(images).tobytes())
    if labels:
        write_bytes_atomic(Path(labels), dataset.labels(split).astype(np.uint8).tobytes())
    shape = "x".join(str(n) for n in images.shape[1:])
    print(f"wrote {out}: {len(images):,} {split} images of {shape} uint8 pixels")
    return 0


def record_stream(
    dataset: Dataset, learn: int | None, test: int | None, seed: int, passes: int = 1
) -> tuple[bytes, np.ndarray]:
    """The records of ``learn`` training examples (kind 1, a seeded shuffle per pass), then
    ``test`` test images (kind 0), then one state-hash record (kind 2); and the test labels.
    Each record is kind, label and the image's uint8 pixels."""
    x_train = dataset.x_train.reshape(len(dataset.x_train), -1)
    x_test = dataset.x_test.reshape(len(dataset.x_test), -1)
    learn = len(x_train) if learn is None else min(learn, len(x_train))
    test = len(x_test) if test is None else min(test, len(x_test))
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x_train))[:learn] for _ in range(passes)])
    size = 2 + x_train.shape[1]
    out = np.zeros((len(order) + test + 1, size), np.uint8)
    out[: len(order), 0] = 1
    out[: len(order), 1] = dataset.y_train[order]
    out[: len(order), 2:] = x_train[order]
    out[len(order) : len(order) + test, 2:] = x_test[:test]
    out[-1, 0] = 2
    return out.tobytes(), dataset.y_test[:test].astype(np.uint8)


def write_records(args: Any) -> int:
    """``records``: write a record stream (and its test labels) atomically."""
    for path, flag in ((args.out, "--out"), (args.labels, "--labels")):
        if path:
            check_writable(path, flag)
    for value, flag, low in ((args.learn, "--learn", 0), (args.test, "--test", 0),
                             (args.passes, "--passes", 1)):  # fmt: skip
        if value is not None and not low <= value <= 10**7:
            raise ConfigError(f"{flag} must be an integer in {low}..10000000, got {value}")
    dataset = load_dataset(args.name, args.data_dir)
    if dataset.x_train.dtype != np.uint8 or dataset.n_classes > 256:
        raise DataError(
            f"{args.name} holds {dataset.x_train.dtype} inputs, not uint8 pixels: a device "
            "learner reads raw pixels"
        )
    data, labels = record_stream(dataset, args.learn, args.test, args.seed, args.passes)
    write_bytes_atomic(Path(args.out), data)
    if args.labels:
        write_bytes_atomic(Path(args.labels), labels.tobytes())
    count = len(data) // (2 + math.prod(dataset.input_shape))
    print(f"wrote {args.out}: {count:,} records of {2 + math.prod(dataset.input_shape)} bytes")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    def job() -> int:
        args = build_parser().parse_args(argv)
        root = data_home(args.data_dir)
        if args.command == "list":
            print(f"data directory: {root}")
            for name in DATASETS:
                source = DATASETS.get(name)
                where = f"{root / source.files.folder}" if source.files else "embedded"
                print(
                    f"  {name:<14} {source.description:<42} {file_state(source, root):<24} {where}"
                )
            return 0
        if args.command == "pixels":
            return write_pixels(args.name, args.data_dir, args.split, args.out, args.labels)
        if args.command == "records":
            return write_records(args)
        source = DATASETS.get(args.name)
        if source.files is None:
            print(f"{source.name} is embedded: nothing to {args.command}")
            return 0
        if args.command == "fetch":
            paths = ensure_files(source.files, root, allow_download=True, replace_corrupt=True)
            for path in paths.values():
                print(f"ok        {path}")
        else:
            statuses = check_local(source.files, root)
            for status in statuses:
                print(status.describe())
            if not all(s.ok for s in statuses):
                # the files may be present in another official form (Keras npz, extracted dir)
                try:
                    dataset = source.load(root, False)
                except DataError as exc:
                    raise DataError(f"{source.name} in {root} does not verify: {exc}") from None
                print(f"{source.name} loads from another official form of its files")
            else:
                dataset = source.load(root, False)
            print(
                f"{source.name}: {len(dataset.y_train)} training and {len(dataset.y_test)} "
                f"test examples of shape {dataset.input_shape}, {dataset.n_classes} classes"
            )
        return 0

    return run_cli(PROG, job)


if __name__ == "__main__":
    sys.exit(main())
