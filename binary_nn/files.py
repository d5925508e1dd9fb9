"""Files written whole or not at all: a temporary file beside the target, then a rename."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode())


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | Path, flag: str) -> None:
    """Refuse now, in one sentence, a file path that could not be written later."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"{flag}: cannot write {path}: part of its directory is a file; choose a writable path"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{flag}: cannot write {path} ({exc.strerror}); choose a writable path"
        ) from None


def jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (NaN, inf) become strings; numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    write_text_atomic(path, json.dumps(jsonable(data), indent=2) + "\n")


#: the largest JSON document binary_nn reads (a run's config.json is a few kB)
MAX_JSON_BYTES = 64 << 20


def read_json(path: str | Path, what: str) -> Any:
    """The JSON document at ``path``, checked first for being a regular file of a sane size;
    any problem is one :class:`ConfigError` sentence naming ``what`` it should have been."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; it should be {what}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); it should be {what}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ConfigError(f"{path} is {kind}; it should be {what}")
    if info.st_size > MAX_JSON_BYTES:
        raise ConfigError(f"{path} is {info.st_size:,} bytes, too large for {what}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable as {what} ({exc})") from None
