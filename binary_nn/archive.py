"""Reading ``.npz`` archives that binary_nn or a user wrote, checked before they are trusted.

``npz_headers`` reads what each array declares (dtype, shape) from its ``.npy`` header
without reading the array; ``read_npz`` refuses, in one sentence, a file that is not a
regular file (a FIFO would block), not a zip archive, holds anything but ``.npy`` members,
pickled objects, or arrays whose declared sizes add up to more than this process may
allocate (``binary_nn.limits.available_bytes``) — before reading any of them.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from . import limits
from .errors import ConfigError
from .files import regular_file

#: how much of the memory this process may use one archive may take once read
SHARE_OF_MEMORY = 0.5


def _header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return tuple(int(n) for n in shape), np.dtype(dtype)


def npz_headers(path: str | Path, what: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's declared shape and dtype, by key, read from the headers only."""
    path = regular_file(path, what)
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is not an .npz archive; give {what}")
    found = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy") or "/" in info.filename:
                    raise ConfigError(
                        f"{path} holds {info.filename!r}, which is not an array; give {what}"
                    )
                with archive.open(info) as member:
                    found[info.filename[: -len(".npy")]] = _header(member)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path} is not a readable .npz archive ({exc}); give {what}") from None
    return found


def declared_bytes(headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> int:
    return sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path`` (see the module docstring for what is refused
    before anything is read)."""
    headers = npz_headers(path, what)
    for key, (_, dtype) in headers.items():
        if dtype.hasobject:
            raise ConfigError(f"{path} holds pickled Python objects in {key!r}; give {what}")
    needed, available = declared_bytes(headers), limits.available_bytes()
    if available is not None and needed > SHARE_OF_MEMORY * available:
        raise ConfigError(
            f"{path} declares arrays of {limits.describe(needed)}, more than this process may "
            f"hold ({limits.describe(available)}); give {what}"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path} is not a readable .npz archive ({exc}); give {what}") from None
