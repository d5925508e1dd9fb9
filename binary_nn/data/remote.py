"""Official dataset files: where they are looked for, how they are checked and downloaded.

A ``FileSet`` names the files of one dataset with their sha256 and the mirrors that serve
them. Files live in ``<data dir>/<folder>/`` (the data dir is ``--data-dir``, else
``$BINARY_NN_DATA``, else the user cache directory); files placed directly in the data dir are
used too. Every file is verified before use. Downloads go through pooch, which writes to a
temporary file and moves it under the final name only once its hash matches, so an
interrupted or corrupt transfer never lands in the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

ENV_VAR = "BINARY_NN_DATA"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class FileSet:
    """The files of one dataset, the folder they go in, and mirrors tried in order."""

    dataset: str
    folder: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]


def data_home(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$BINARY_NN_DATA``, else the platform's user cache directory."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("binary_nn"))


def sha256_of(path: Path) -> str:
    """The file's sha256; only a regular file is read (a device or a pipe never ends)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise DataError(f"{path} is not a regular file (a device, a pipe?); remove it")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileStatus:
    """What was found for one file: a verified ``path``, or why not."""

    file: RemoteFile
    path: Path | None = None
    bad: Path | None = None
    actual_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        if self.ok:
            return f"ok        {self.path}"
        if self.bad is not None:
            return (
                f"MISMATCH  {self.bad}: expected sha256 {self.file.sha256}, "
                f"got {self.actual_sha256}"
            )
        return f"missing   {self.file.name}"


def check_local(fileset: FileSet, root: Path) -> list[FileStatus]:
    """Look for each file in ``root/<folder>/`` then ``root/``, verifying its sha256."""
    statuses = []
    for remote in fileset.files:
        status = FileStatus(remote)
        for candidate in (root / fileset.folder / remote.name, root / remote.name):
            if not candidate.exists():
                continue
            actual = sha256_of(candidate)
            if actual == remote.sha256:
                status.path = candidate
                break
            if status.bad is None:
                status.bad, status.actual_sha256 = candidate, actual
        statuses.append(status)
    return statuses


def fetch_command(fileset: FileSet, root: Path) -> str:
    return f"python -m binary_nn.data fetch {fileset.dataset} --data-dir {root}"


def _mismatch_sentence(remote: RemoteFile, where: str, pooch_message: str) -> str:
    found = re.search(r"but got ([0-9a-fA-F]+)", pooch_message)
    actual = found.group(1) if found else "a different hash"
    return (
        f"checksum mismatch for {remote.name} from {where}: expected sha256 "
        f"{remote.sha256}, got {actual}; the file was discarded"
    )


def download(fileset: FileSet, remote: RemoteFile, root: Path, progress: bool = True) -> Path:
    """Download one file into ``root/<folder>/``, trying each mirror in turn."""
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")  # one line per mirror tried is noise
    target = root / fileset.folder
    failures = []
    for mirror in fileset.mirrors:
        url = mirror.rstrip("/") + "/" + remote.name
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{remote.sha256}",
                fname=remote.name,
                path=target,
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60),
            )
            return Path(path)
        except ValueError as exc:
            failures.append(_mismatch_sentence(remote, url, str(exc)))
        except (requests.RequestException, OSError) as exc:
            failures.append(type(exc).__name__)
    mismatches = [f for f in failures if f.startswith("checksum")]
    reason = mismatches[0] if mismatches else f"{len(failures)} mirrors, {failures[0]}"
    raise DataError(f"no mirror gave {remote.name} ({reason})")


def ensure_files(
    fileset: FileSet,
    root: Path,
    allow_download: bool = True,
    progress: bool = True,
    replace_corrupt: bool = False,
) -> dict[str, Path]:
    """Verified paths of every file of ``fileset``, downloading the missing ones.

    A local file with a wrong hash is never used: it is a "checksum mismatch" error naming
    the file and both hashes, unless ``replace_corrupt`` (``fetch``) downloads it again.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"the data directory {root} is a file; give --data-dir a directory")
    statuses = check_local(fileset, root)
    bad = [s for s in statuses if not s.ok and s.bad is not None]
    if bad and not replace_corrupt:
        s = bad[0]
        raise DataError(
            f"checksum mismatch: {s.bad} has sha256 {s.actual_sha256}, expected "
            f"{s.file.sha256}; delete it, or run `{fetch_command(fileset, root)}` to download "
            "it again"
        )
    missing = [s for s in statuses if not s.ok]
    if missing and not allow_download:
        names = ", ".join(s.file.name for s in missing)
        raise DataError(
            f"{fileset.dataset} needs {names}, not found in {root / fileset.folder} or {root}; "
            f"run `{fetch_command(fileset, root)}` where there is internet, "
            f"or point --data-dir at a directory holding them"
        )
    created = [p for p in (root, root / fileset.folder) if not p.exists()]
    for status in missing:
        try:
            status.path = download(fileset, status.file, root, progress)
        except DataError as exc:
            for folder in reversed(created):  # leave no empty folders behind
                try:
                    folder.rmdir()
                except OSError:
                    pass
            names = ", ".join(s.file.name for s in missing if not s.ok)
            raise DataError(
                f"{fileset.dataset}: {names} not found in {root / fileset.folder}, and {exc}; "
                f"run `{fetch_command(fileset, root)}` where there is internet, or point "
                "--data-dir at a directory holding them"
            ) from None
    return {s.file.name: s.path for s in statuses if s.path is not None}
