"""Parsers of the official file formats: IDX (MNIST-style) and the CIFAR-10 python pickles.

Every parser checks what it reads against what the header or layout promises, and names the
file when something disagrees, so a truncated or foreign file is never used silently.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

# IDX type codes (third byte of the magic number) and their big-endian numpy dtypes
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode an (uncompressed) IDX file: magic ``00 00 <type> <ndim>``, ndim big-endian
    uint32 dimensions, then the values. The array is a read-only view of ``data``."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{name} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated: its IDX header is incomplete")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{name} holds {len(data) - header} bytes of values but its header {dims} "
            f"promises {expected}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def read_idx_gz(path: Path, raw: bytes | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file (``raw`` may hold its bytes already)."""
    raw = path.read_bytes() if raw is None else raw
    try:
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a complete gzip file ({exc})") from None
    return parse_idx(data, str(path))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a CIFAR batch cannot run code."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
CIFAR_DIR = "cifar-10-batches-py"


def parse_cifar_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n x 32 x 32 x 3 uint8, channels last, as Keras gives them) and labels."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        images = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{name} is not a CIFAR-10 python batch ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        raise DataError(f"{name}: expected uint8 images of 3072 values, got {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{name}: expected one integer label per image")
    # stored as 1024 red, 1024 green, 1024 blue values; kept channels last
    hwc = np.ascontiguousarray(images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return hwc, labels.astype(np.int64)


def read_cifar(source: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` from ``cifar-10-python.tar.gz`` or its extracted
    ``cifar-10-batches-py`` directory."""

    def gather(read: Any, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [parse_cifar_batch(read(n), f"{source}:{n}") for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    if source.is_dir():

        def read(n: str) -> bytes:
            path = source / n
            if not path.is_file():
                raise DataError(
                    f"{source} lacks {n}; it must hold {', '.join(CIFAR_TRAIN)} and {CIFAR_TEST[0]}"
                )
            return path.read_bytes()

        return (*gather(read, CIFAR_TRAIN), *gather(read, CIFAR_TEST))
    try:
        with tarfile.open(source, "r:gz") as tar:

            def read(n: str) -> bytes:
                try:
                    member = tar.extractfile(f"{CIFAR_DIR}/{n}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"{source} lacks {CIFAR_DIR}/{n}")
                return member.read()

            return (*gather(read, CIFAR_TRAIN), *gather(read, CIFAR_TEST))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source} is not a readable CIFAR-10 tarball ({exc})") from None
