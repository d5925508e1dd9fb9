"""A run directory: ``config.json``, ``metrics.jsonl`` and ``summary.json``, claimed by a lock.

It is written as the run goes (``metrics.jsonl`` is appended and flushed line by line, JSON
documents are replaced atomically), so a killed run keeps every logged step.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from ..errors import BinaryNNError, ConfigError
from ..files import jsonable, read_json_object, write_json_atomic
from .checkpoint import RUN_CHECKPOINT
from .tracker import Tracker

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)
#: statuses of a run that is over: a campaign skips it (``terminated``: stopped early by a
#: search, which decided it was not worth its epochs)
FINISHED = ("completed", "diverged", "terminated")


class RunBusy(ConfigError):
    """Another process is writing the run directory."""


class RunFinished(BinaryNNError):
    """The run directory already holds a finished run (a campaign skips it)."""


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary if it finished, else None (never started, killed, or failed)."""
    summary = read_json_object(Path(run_dir) / SUMMARY_FILE)
    return summary if summary is not None and summary.get("status") in FINISHED else None


#: the scores of a summary that readers use as numbers
SUMMARY_SCORES = (
    "train/accuracy", "train/precision", "train/f1", "val/accuracy", "test/accuracy",
    "test/precision", "test/f1", "best/test/accuracy", "best/val/accuracy",
)  # fmt: skip


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_result(summary: dict[str, Any]) -> tuple[float | None, str]:
    """A finished run's result, one definition wherever it is shown: the test accuracy at the
    epoch selected on the validation split when the run held one out (``best/test/accuracy``
    with ``best/metric`` = ``val/accuracy``), else at its last epoch; and which of the two
    it is. None when the summary holds no such number."""
    if summary.get("best/metric") == "val/accuracy":
        value, label = summary.get("best/test/accuracy"), "at the epoch selected on validation"
    else:
        value, label = summary.get("test/accuracy"), "at the last epoch"
    return (float(value) if value is not None and is_number(value) else None), label


def run_files_damage(config: dict[str, Any], summary: dict[str, Any]) -> str | None:
    """What makes a run directory's ``config.json`` and ``summary.json`` unusable to a reader
    (a hand edit, a disk error), in words, or None: the configuration must validate, the
    scores be numbers, the sizes whole numbers. Readers (``runs``, the report, a campaign's
    summary) skip such a run and say why."""
    from .config import TrainConfig

    try:
        TrainConfig.from_stored(config).resolved()
    except (ConfigError, TypeError, ValueError) as exc:
        return f"its config.json does not validate: {exc}"
    for key in SUMMARY_SCORES:
        value = summary.get(key)
        if value is not None and not is_number(value):
            return f"its summary.json holds {key} = {value!r}, not a number"
    for key in ("n_train", "batchsize"):
        value = config.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            return f"its config.json holds {key} = {value!r}, not a whole number"
    return None


def being_written(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock (a run writes it now)."""
    try:
        with open(Path(run_dir) / LOCK_FILE) as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def whole_lines(path: Path, limit: int) -> int:
    """How many of the first ``limit`` bytes of a JSON-lines file are whole lines that parse
    as JSON objects, read line by line (``limit`` when all of them are; less when the file is
    shorter, missing, or holds a cut line, NUL bytes or other damage before it)."""
    good = 0
    try:
        with open(path, "rb") as lines:
            while good < limit:
                line = lines.readline(limit - good)
                if not line.endswith(b"\n"):
                    break
                try:
                    if not isinstance(json.loads(line), dict):
                        break
                except ValueError:
                    break
                good += len(line)
    except FileNotFoundError:
        pass
    return good


class RunDirectory(Tracker):
    """``config.json``, ``metrics.jsonl`` (one object per logged step) and ``summary.json``.

    The directory is claimed before anything is written: an exclusive lock on its ``.lock``
    file for as long as the run writes (released by the system even if the process is
    killed), so that two writers never share it; a directory that already holds a run is
    refused unless ``overwrite`` (a finished one raises ``RunFinished`` when
    ``skip_finished``, which campaigns use to resume).
    """

    def __init__(
        self,
        path: str | Path,
        overwrite: bool = False,
        skip_finished: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} is a file; give a directory for the run")
        created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock: TextIO | None = open(self.path / LOCK_FILE, "a")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {self.path} ({exc.strerror}); choose a "
                "writable --out"
            ) from None
        self._created = created
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._release()
            raise RunBusy(
                f"{self.path} is being written by another run; wait for it or choose another --out"
            ) from None
        held = [name for name in RUN_FILES if (self.path / name).exists()]
        if held and skip_finished and finished_summary(self.path) is not None:
            self._release()
            raise RunFinished(f"{self.path} holds a finished run")
        #: whether the run continues from the directory's checkpoint
        self.resuming = resume and self.checkpoint.is_file()
        if held and not overwrite and not self.resuming:
            self._release()
            raise ConfigError(
                f"--out {self.path} already holds a run ({', '.join(held)}); choose another "
                "directory, or pass --overwrite to replace it"
            )
        self._metrics: BinaryIO | None = None
        self._digest = hashlib.sha256()

    @property
    def checkpoint(self) -> Path:
        return self.path / RUN_CHECKPOINT

    def open(self, metrics_bytes: int = 0, metrics_digest: str = "") -> str | None:
        """Start writing: the old summary goes; ``metrics.jsonl`` starts afresh, or, when the
        run resumes, keeps its first ``metrics_bytes`` (what the checkpoint covers). Returns a
        sentence when the kept part was damaged (see ``whole_lines``) and was cut back;
        refuses a file whose first ``metrics_bytes`` are whole but are not what the run wrote
        (their sha256 is not ``metrics_digest``: another run's log put in its place)."""
        path = self.path / METRICS_FILE
        note = None
        self._digest = hashlib.sha256()
        if self.resuming:
            kept = whole_lines(path, metrics_bytes)
            if kept:
                with open(path, "rb") as old:
                    self._digest.update(old.read(kept))
            if (
                metrics_digest
                and kept == metrics_bytes
                and (self._digest.hexdigest() != metrics_digest)
            ):
                raise ConfigError(
                    f"{path} is not this run's log: its first {kept:,} bytes differ from what "
                    "the run wrote up to its checkpoint; put the run's own metrics.jsonl back, "
                    "or start the run again with --overwrite"
                )
            if kept != metrics_bytes:
                note = (
                    f"{path} holds {kept:,} bytes of whole JSON lines where the checkpoint "
                    f"covers {metrics_bytes:,} (it was cut or damaged): the log goes on from "
                    "there, with the lines in between missing"
                )
            with open(path, "ab") as metrics:
                metrics.truncate(kept)
        else:
            path.write_bytes(b"")
        (self.path / SUMMARY_FILE).unlink(missing_ok=True)
        # unbuffered: each line goes to the file in one write, or is cut back (see _append)
        self._metrics = open(path, "ab", buffering=0)
        return note

    @property
    def metrics_digest(self) -> str:
        """The sha256 of ``metrics.jsonl`` as written so far (what a checkpoint records, so
        that a resume can tell the run's own log from another)."""
        return self._digest.hexdigest()

    @property
    def metrics_bytes(self) -> int:
        """How much of ``metrics.jsonl`` is written (what a checkpoint taken now covers)."""
        assert self._metrics is not None, "open() the run directory first"
        return self._metrics.tell()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the lock
            self._lock = None

    def abandon(self) -> None:
        """Give the directory back unused (the run failed before it started): a directory
        this run created is removed again."""
        self._release()
        if self._created:
            for name in (LOCK_FILE, CONFIG_FILE):
                (self.path / name).unlink(missing_ok=True)
            try:
                self.path.rmdir()
            except OSError:
                pass

    def start(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        write_json_atomic(self.path / CONFIG_FILE, {**config, **info})

    def _append(self, record: dict[str, Any]) -> None:
        """One line, whole or not at all: a write that fails (a full disk) is cut back, so
        that the file stays parseable line by line."""
        assert self._metrics is not None, "open() the run directory first"
        line = (json.dumps(jsonable(record)) + "\n").encode()
        start = self._metrics.tell()
        try:
            written = self._metrics.write(line)
            if written != len(line):  # a short write: the disk filled up in the middle
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._digest.update(line)
        except OSError:
            try:
                os.ftruncate(self._metrics.fileno(), start)
                self._metrics.seek(start)
            except OSError:
                pass
            raise

    def log_batch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        self._append({"epoch": epoch, "iteration": iteration, **metrics})

    def log_epoch(self, metrics: dict[str, Any], epoch: int, iteration: int) -> None:
        self._append({"epoch": epoch, "iteration": iteration, **metrics})
        assert self._metrics is not None
        os.fsync(self._metrics.fileno())

    def finish(self, summary: dict[str, Any]) -> None:
        self._close_metrics()
        write_json_atomic(self.path / SUMMARY_FILE, summary)
        self._release()

    def _close_metrics(self) -> None:
        if self._metrics is not None and not self._metrics.closed:
            try:
                self._metrics.close()
            except OSError:  # a full disk: what could be written is written
                pass

    def close(self) -> None:
        """Stop writing without a summary (an interrupted run) and give the directory up."""
        self._close_metrics()
        self._release()

    def abort(self, summary: dict[str, Any]) -> None:
        """The run stopped (or failed) before its end: its summary says how far it got."""
        self._close_metrics()
        try:
            write_json_atomic(self.path / SUMMARY_FILE, summary)
        except OSError:  # a full disk: the checkpoint and the metrics say the rest
            pass
        self._release()
