"""Where each dataset comes from: the registry behind ``--dataset``.

Adding a dataset is one :class:`DatasetSource` entry in :data:`DATASETS`; a path ending in
``.npz`` is read by :func:`load_npz`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import Registry
from .dataset import Dataset


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset: ``load(data_dir)`` returns it (``data_dir`` may be None)."""

    name: str
    description: str
    load: Callable[[Path | None], Dataset]


def load_digits(data_dir: Path | None = None) -> Dataset:
    """scikit-learn's 8x8 digits (embedded, no download): ``x / 8 - 1``, stratified 80/20 split."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = digits.data / 8.0 - 1.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return Dataset("digits", x_train, y_train, x_test, y_test)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path) -> Dataset:
    """A user's ``.npz`` holding ``x_train, y_train, x_test, y_test``.

    uint8 images are scaled to ``x / 127.5 - 1``; float arrays are used as they are; labels are
    integers ``0 .. C-1`` with ``C`` = the largest label + 1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; give an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"dataset file {path} lacks the array(s) {', '.join(missing)}; it must hold "
                    f"{', '.join(NPZ_KEYS)}"
                )
            arrays = {key: archive[key] for key in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"dataset file {path} is not a readable .npz archive ({exc})") from None
    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.uint8 and not np.issubdtype(arrays[key].dtype, np.floating):
            raise DataError(
                f"{path}: {key} must be uint8 images or floats, got {arrays[key].dtype}"
            )
    return Dataset(path.name, **arrays)


DATASETS: Registry[DatasetSource] = Registry("dataset", "-d/--dataset")
DATASETS.add("digits", DatasetSource("digits", "scikit-learn 8x8 digits, embedded", load_digits))


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load a registered dataset by name, or a ``.npz`` file by path."""
    if str(name).lower().endswith(".npz") or Path(name).is_file():
        return load_npz(name)
    source = DATASETS.get(name)
    return source.load(Path(data_dir) if data_dir is not None else None)
