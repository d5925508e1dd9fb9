"""Where each dataset comes from: the registry behind ``--dataset``.

Adding a dataset is one ``DatasetSource`` entry in ``DATASETS``; a path ending in
``.npz`` is read by ``load_npz``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..archive import read_npz
from ..errors import ConfigError, DataError
from ..registry import Registry
from .dataset import PIXEL_DIVISOR, Dataset
from .formats import CIFAR_DIR, read_cifar, read_idx_gz
from .remote import FileSet, RemoteFile, check_local, data_home, ensure_files

Loader = Callable[[Path, bool], Dataset]


#: digits' pixels are 0..16: ``x = p / 8 - 1`` maps them to [-1, 1]
DIGITS_DIVISOR = 8.0


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset.

    ``load(root, allow_download)`` returns it from the data directory ``root``; ``files`` are
    the official files ``fetch`` downloads and ``verify`` checks (None for embedded data);
    ``input_shape`` (one example, channels last) and ``n_classes`` describe it without loading.
    """

    name: str
    description: str
    load: Loader
    files: FileSet | None = None
    input_shape: tuple[int, ...] = (28, 28, 1)
    n_classes: int = 10
    pixel_divisor: float = PIXEL_DIVISOR


def load_digits(root: Path | None = None, allow_download: bool = True) -> Dataset:
    """scikit-learn's 8x8 digits (embedded, no download): pixels 0..16 kept as uint8 and
    scaled to ``x = p / 8 - 1``, stratified 80/20 split, as ``(N, 8, 8, 1)`` images."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = digits.data.astype(np.uint8).reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return Dataset("digits", x_train, y_train, x_test, y_test, pixel_divisor=DIGITS_DIVISOR)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path) -> Dataset:
    """A user's ``.npz`` holding ``x_train, y_train, x_test, y_test``.

    uint8 images are scaled to ``x / 127.5 - 1``; float arrays are used as they are; labels are
    integers ``0 .. C-1`` with ``C`` = the largest label + 1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist; give an existing .npz file")
    return _dataset_from_npz(path.name, path)


def _dataset_from_npz(name: str, path: Path) -> Dataset:
    arrays = _read_npz(path)
    return Dataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(
            f"dataset file {path} is not an .npz archive; save the arrays with numpy.savez"
        )
    try:
        stored = read_npz(path, f"a dataset .npz holding {', '.join(NPZ_KEYS)}")
    except ConfigError as exc:
        raise DataError(f"dataset file {exc}") from None
    missing = [key for key in NPZ_KEYS if key not in stored]
    if missing:
        raise DataError(
            f"dataset file {path} lacks the array(s) {', '.join(missing)}; it must hold "
            f"{', '.join(NPZ_KEYS)}"
        )
    arrays = {key: stored[key] for key in NPZ_KEYS}
    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.uint8 and not np.issubdtype(arrays[key].dtype, np.floating):
            raise DataError(
                f"{path}: {key} must be uint8 images or floats, got {arrays[key].dtype}"
            )
    return arrays


IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

MNIST_FILES = FileSet(
    "MNIST",
    "mnist",
    (
        RemoteFile(
            IDX_NAMES[0],
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            9912422,
        ),
        RemoteFile(
            IDX_NAMES[1], "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881
        ),
        RemoteFile(
            IDX_NAMES[2],
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            1648877,
        ),
        RemoteFile(
            IDX_NAMES[3], "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542
        ),
    ),
    (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)
MNIST_KERAS_FILE = FileSet(
    "MNIST",
    "mnist",
    (RemoteFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),),
    ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",),
)
FASHION_MNIST_FILES = FileSet(
    "FASHION_MNIST",
    "fashion_mnist",
    (
        RemoteFile(
            IDX_NAMES[0],
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            26421880,
        ),
        RemoteFile(
            IDX_NAMES[1], "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515
        ),
        RemoteFile(
            IDX_NAMES[2],
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            4422102,
        ),
        RemoteFile(
            IDX_NAMES[3], "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148
        ),
    ),
    (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
)
CIFAR10_FILES = FileSet(
    "CIFAR10",
    "cifar10",
    (
        RemoteFile(
            "cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            170498071,
        ),
    ),
    ("https://www.cs.toronto.edu/~kriz/",),
)


def idx_loader(files: FileSet, keras_file: FileSet | None = None) -> Loader:
    """A loader of the four MNIST-style IDX files (or, if present locally, Keras's npz)."""

    def load(root: Path, allow_download: bool = True) -> Dataset:
        local = check_local(files, root)
        if all(s.ok for s in local):  # the common case: hash each file once, no network
            paths = {s.file.name: s.path for s in local if s.path is not None}
        else:
            if keras_file is not None:
                (keras,) = check_local(keras_file, root)
                if keras.ok and keras.path is not None:
                    return _dataset_from_npz(files.dataset, keras.path)
            paths = ensure_files(files, root, allow_download)
        x_train, y_train, x_test, y_test = (read_idx_gz(paths[name]) for name in IDX_NAMES)
        for kind, images, labels in (("train", x_train, y_train), ("t10k", x_test, y_test)):
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(
                    f"{files.dataset}: the {kind} files hold {images.shape} images and "
                    f"{labels.shape} labels, which do not pair up"
                )
        return Dataset(files.dataset, x_train, y_train, x_test, y_test, n_classes=10)

    return load


def load_cifar10(root: Path, allow_download: bool = True) -> Dataset:
    """CIFAR-10 from an extracted ``cifar-10-batches-py/`` or the (verified) tarball."""
    for folder in (root / CIFAR10_FILES.folder, root):
        if (folder / CIFAR_DIR).is_dir():
            return Dataset("CIFAR10", *read_cifar(folder / CIFAR_DIR), n_classes=10)
    paths = ensure_files(CIFAR10_FILES, root, allow_download)
    return Dataset("CIFAR10", *read_cifar(paths[CIFAR10_FILES.files[0].name]), n_classes=10)


DATASETS: Registry[DatasetSource] = Registry("dataset", "-d/--dataset")
DATASETS.add(
    "digits",
    DatasetSource(
        "digits",
        "scikit-learn 8x8 digits, embedded",
        load_digits,
        input_shape=(8, 8, 1),
        pixel_divisor=DIGITS_DIVISOR,
    ),
)
DATASETS.add(
    "MNIST",
    DatasetSource(
        "MNIST",
        "handwritten digits, 60k/10k, 28x28",
        idx_loader(MNIST_FILES, MNIST_KERAS_FILE),
        MNIST_FILES,
    ),
)
DATASETS.add(
    "FASHION_MNIST",
    DatasetSource(
        "FASHION_MNIST",
        "Zalando clothing images, 60k/10k, 28x28",
        idx_loader(FASHION_MNIST_FILES),
        FASHION_MNIST_FILES,
    ),
    "fashion-mnist",
    "fashionmnist",
    "fashion",
)
DATASETS.add(
    "CIFAR10",
    DatasetSource(
        "CIFAR10",
        "colour images, 50k/10k, 32x32x3",
        load_cifar10,
        CIFAR10_FILES,
        input_shape=(32, 32, 3),
    ),
    "cifar",
    "cifar-10",
)


def load_dataset(
    name: str, data_dir: str | Path | None = None, allow_download: bool = True
) -> Dataset:
    """Load a registered dataset by name, or a ``.npz`` file by path."""
    if str(name).lower().endswith(".npz") or Path(name).is_file():
        return load_npz(name)
    source = DATASETS.get(name)
    return source.load(data_home(data_dir), allow_download)
