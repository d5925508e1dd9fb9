"""Files written whole or not at all: a temporary file beside the target, then a rename."""

from __future__ import annotations

import glob
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: a temporary file of ``write_bytes_atomic``: ``.{target name}.{writer's pid}.partial``
#: plus mkstemp's random part, so the next writer of the target knows whose it is
PARTIAL = ".partial"


def _partial_prefix(path: Path, pid: int) -> str:
    return f".{path.name}.{pid}{PARTIAL}"


def remove_stale_partials(path: Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` left when they were killed in the
    middle of a write (their process is gone); return what was removed."""
    removed = []
    for candidate in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*{PARTIAL}*"):
        pid_text = candidate.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (removing first the
    temporary files of writers that were killed while writing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(path, os.getpid()), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give the usual mode
        os.replace(tmp, path)
    except OSError as exc:  # named after the file it meant to write (a full disk, ...)
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
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


def claim_output(path: str | Path, flag: str, kind: str = "file") -> Path:
    """Refuse now, in one sentence naming ``flag``, an output path (a ``file`` or a ``dir``)
    that could not be written later: the other kind there already, a part of the path that
    is a file, a name longer than the file system allows, a directory this user cannot
    write. Nothing is created.
    """
    path = Path(path)
    for part in path.parts:
        if len(part.encode()) > 255:
            raise ConfigError(
                f"{flag}: the name {part[:40]!r}... is {len(part.encode())} bytes, longer than "
                "the file system allows (255); choose a shorter one"
            )
    if path.exists():
        if kind == "file" and path.is_dir():
            raise ConfigError(f"{flag} {path} is a directory; give a file path")
        if kind == "file" and not path.is_file():
            raise ConfigError(f"{flag} {path} is not a regular file (a device, a pipe?)")
        if kind == "dir" and not path.is_dir():
            raise ConfigError(f"{flag} {path} is a file; give a directory")
    existing = path if kind == "dir" and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{flag}: cannot write {path}: {existing} is a file, not a directory; choose "
            "another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: cannot write {path}: {existing} is not writable; choose "
                          "another path")  # fmt: skip
    if kind == "file" and path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag}: {path} is not writable; choose another path")
    return path


def check_writable(path: str | Path, flag: str) -> None:
    """Refuse now, in one sentence, a file path that could not be written later."""
    claim_output(path, flag, "file")


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
    any problem is one ``ConfigError`` sentence naming ``what`` it should have been."""
    path = regular_file(path, what, MAX_JSON_BYTES)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable as {what} ({exc})") from None


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing, not a regular file, too large, not
    JSON or not an object (the lenient reader of listings and reports, which say how many
    they could not read)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON_BYTES:
            return None
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


#: the largest YAML document binary_nn reads (a sweep or settings file is a few kB)
MAX_YAML_BYTES = 1 << 20
#: aliases (``*name``) and nesting a YAML document may use: a settings file uses a few, an
#: alias bomb ("billion laughs") or a document nested a thousand deep is refused
MAX_YAML_ALIASES = 20
MAX_YAML_DEPTH = 50


def regular_file(path: str | Path, what: str, max_bytes: int | None = None) -> Path:
    """``path`` when it is a regular file (of at most ``max_bytes``); otherwise one
    ``ConfigError`` sentence naming ``what`` it should be. A FIFO, device or socket is
    refused without being opened (reading one would block or never end)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; give {what}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); give {what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} is a directory; give {what}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file (a pipe or a device?); give {what}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise ConfigError(f"{path} is {info.st_size:,} bytes, too large for {what}")
    return path


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document at ``path``: a regular file of at most ``MAX_YAML_BYTES``,
    loaded safely (no Python objects) with at most ``MAX_YAML_ALIASES`` aliases and
    ``MAX_YAML_DEPTH`` levels; any problem is one ``ConfigError`` sentence, with the
    line of a syntax error."""
    import yaml

    path = regular_file(path, what, MAX_YAML_BYTES)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path} as text ({exc}); give {what}") from None
    try:
        return yaml.load(text, Loader=_bounded_loader(path))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc})") from None


def _bounded_loader(path: Path) -> type:
    """A SafeLoader that counts aliases and nesting as it composes the document."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        aliases = 0
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise ConfigError(
                        f"{path} uses more than {MAX_YAML_ALIASES} YAML aliases (*name); "
                        "write the values out"
                    )
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    f"{path} nests more than {MAX_YAML_DEPTH} levels deep; it is not a "
                    "settings or sweep file"
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader
